"""The stale-run reaper: it fails runs whose worker is gone and runs no worker took, and leaves live ones be."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from django.test import override_settings
from django.utils import timezone

from syncengine import reaper, services, tasks
from syncengine.choices import ErrorKind, RunStatus, RunTrigger
from syncengine.connections import target_dsn
from syncengine.models import SyncRun
from syncengine.pipeline.locks import try_lock_table

pytestmark = pytest.mark.django_db


@override_settings(SYNC_TIMEOUT_SECONDS=600, FDM_RUN_STALE_GRACE_SECONDS=60, FDM_RUN_QUEUED_MAX_AGE=3600)
def test_the_reaper_fails_runs_whose_worker_is_gone(make_table):
    table = make_table()
    now = timezone.now()
    stale = services.run_create(table=table, trigger=RunTrigger.SCHEDULE)
    stale.start(executor="worker-1:42")
    SyncRun.objects.filter(pk=stale.pk).update(heartbeat_at=now - timedelta(seconds=661))
    alive = services.run_create(table=table, trigger=RunTrigger.SCHEDULE)
    alive.start()
    SyncRun.objects.filter(pk=alive.pk).update(
        started_at=now - timedelta(hours=3), heartbeat_at=now - timedelta(seconds=30)
    )

    failed = reaper.runs_fail_stale(now=now)

    assert [run.pk for run in failed] == [stale.pk]
    stale.refresh_from_db()
    assert stale.status == RunStatus.FAILED
    assert stale.error_kind == ErrorKind.TRANSIENT
    assert "presumed dead" in stale.error_message
    assert stale.error_message.startswith(f"{table.name}: ")
    error = next(entry for entry in stale.log if entry["level"] == "error")
    assert error["fields"]["executor"] == "worker-1:42"
    assert stale.heartbeat_at == now - timedelta(seconds=661)  # the worker's last sign of life, kept
    retry = SyncRun.objects.get(retry_of=stale)
    assert (retry.status, retry.attempt) == (RunStatus.QUEUED, 2)
    alive.refresh_from_db()
    assert alive.status == RunStatus.RUNNING


@override_settings(SYNC_TIMEOUT_SECONDS=3600, FDM_RUN_ORPHAN_GRACE_SECONDS=120)
def test_the_reaper_fails_a_silent_run_whose_table_lock_is_free_long_before_the_timeout(make_table):
    orphan_table, busy_table, fresh_table = (
        make_table(name="orphan"),
        make_table(name="busy"),
        make_table(name="fresh"),
    )
    now = timezone.now()
    runs = {}
    for table, silent_for in ((orphan_table, 600), (busy_table, 600), (fresh_table, 30)):
        run = services.run_create(table=table, trigger=RunTrigger.SCHEDULE)
        run.start(executor="worker-1:42")
        SyncRun.objects.filter(pk=run.pk).update(
            started_at=now - timedelta(seconds=silent_for), heartbeat_at=now - timedelta(seconds=silent_for)
        )
        runs[table.name] = run

    # A run that is alive holds its table's lock on its own session in the target database.
    with psycopg.connect(target_dsn(), autocommit=True) as busy_session:
        assert try_lock_table(busy_session, "busy")
        failed = reaper.runs_fail_stale(now=now)

    assert [run.pk for run in failed] == [runs["orphan"].pk]
    orphan = SyncRun.objects.get(pk=runs["orphan"].pk)
    assert orphan.status == RunStatus.FAILED and orphan.error_kind == ErrorKind.TRANSIENT
    assert orphan.error_message.startswith("orphan: the worker's session ended")
    assert SyncRun.objects.get(pk=runs["busy"].pk).status == RunStatus.RUNNING
    assert SyncRun.objects.get(pk=runs["fresh"].pk).status == RunStatus.RUNNING


@override_settings(FDM_RUN_QUEUED_MAX_AGE=3600)
def test_the_reaper_fails_runs_no_worker_took(make_table):
    table = make_table()
    now = timezone.now()
    forgotten = services.run_create(table=table, trigger=RunTrigger.ADMIN)
    SyncRun.objects.filter(pk=forgotten.pk).update(queued_at=now - timedelta(seconds=3601))
    waiting_retry = services.run_create(table=table, trigger=RunTrigger.ADMIN)
    SyncRun.objects.filter(pk=waiting_retry.pk).update(
        queued_at=now - timedelta(hours=5), not_before=now - timedelta(minutes=5)
    )
    fresh = services.run_create(table=table, trigger=RunTrigger.ADMIN)

    assert [run.pk for run in reaper.runs_fail_stale(now=now)] == [forgotten.pk]
    forgotten.refresh_from_db()
    assert forgotten.status == RunStatus.FAILED
    assert "qcluster" in forgotten.error_message
    assert SyncRun.objects.get(pk=waiting_retry.pk).status == RunStatus.QUEUED
    assert SyncRun.objects.get(pk=fresh.pk).status == RunStatus.QUEUED
    assert tasks.reap_stale_runs() == 0
