"""The stale-run reaper: it fails runs whose worker is gone and runs no worker took, and leaves live ones be."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from django.test import override_settings
from django.utils import timezone
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from syncengine import reaper, services, tasks
from syncengine.choices import ErrorKind, RunStatus, RunTrigger
from syncengine.connections import target_dsn
from syncengine.models import SyncRun
from syncengine.pipeline.load import new_staging_name
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
    assert (
        orphan.error_message.startswith("orphan: the run's process (")
        and "session ended" in orphan.error_message
    )
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


@override_settings(SYNC_TIMEOUT_SECONDS=60, FDM_RUN_STALE_GRACE_SECONDS=0)
def test_the_reaper_drops_a_dead_runs_staging_tables_only_when_nobody_holds_the_table(make_table, target):
    free_table, held_table = make_table(), make_table()
    staging = {table.name: new_staging_name(table.name) for table in (free_table, held_table)}
    with psycopg.connect(target_dsn(), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS _fdm_staging")
        for name in staging.values():
            conn.execute(f'CREATE UNLOGGED TABLE _fdm_staging."{name}" (id bigint)')
    runs = {}
    for table in (free_table, held_table):
        run = services.run_create(table=table, trigger=RunTrigger.COMMAND)
        run.start(executor="worker-1:42")
        SyncRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=600))
        runs[table.name] = run

    try:
        with psycopg.connect(target_dsn(), autocommit=True) as new_run:
            assert try_lock_table(new_run, held_table.name)  # a new run of this table took it meanwhile
            failed = reaper.runs_fail_stale()
        left = {
            name for (name,) in target("SELECT tablename FROM pg_tables WHERE schemaname = '_fdm_staging'")
        }
    finally:
        with psycopg.connect(target_dsn(), autocommit=True) as conn:
            for name in staging.values():
                conn.execute(f'DROP TABLE IF EXISTS _fdm_staging."{name}"')

    assert {run.pk for run in failed} == {run.pk for run in runs.values()}
    assert staging[free_table.name] not in left
    assert staging[held_table.name] in left
    dropped = {
        name: next(entry for entry in SyncRun.objects.get(pk=run.pk).log if entry["level"] == "error")[
            "fields"
        ]
        for name, run in runs.items()
    }
    assert dropped[free_table.name]["staging_dropped"] == [staging[free_table.name]]
    assert dropped[held_table.name]["staging_dropped"] == []
    assert not SyncRun.objects.filter(
        retry_of__in=runs.values()
    ).exists()  # sync_table runs: the operator reruns


@override_settings(FDM_RUN_ORPHAN_GRACE_SECONDS=30, FDM_RETRY_BACKOFF_SECONDS=0)
def test_a_schedule_that_finds_a_dead_run_settles_and_retries_it_at_once(make_table):
    table = make_table()
    dead = services.run_create(table=table, trigger=RunTrigger.SCHEDULE)
    dead.start(executor="worker-1:42")
    SyncRun.objects.filter(pk=dead.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=31))

    skipped = services.run_enqueue_scheduled(table_id=table.pk)

    dead.refresh_from_db()
    assert (dead.status, dead.error_kind) == (RunStatus.FAILED, ErrorKind.TRANSIENT)
    retry = SyncRun.objects.get(retry_of=dead)
    assert (retry.status, retry.attempt) == (RunStatus.QUEUED, 2)
    assert skipped.status == RunStatus.SKIPPED
    assert skipped.skip_reason.startswith(f"run #{retry.pk} of this table is still queued")


@override_settings(FDM_RUN_ORPHAN_GRACE_SECONDS=30)
def test_the_reaper_takes_a_dead_runs_task_off_the_orm_queue(make_table):
    """A killed worker never acknowledges its task, which the ORM broker keeps locked until its redelivery over
    an hour later: the reaper deletes it when it settles the run, and leaves other tasks alone."""
    table = make_table()
    now = timezone.now()
    dead = services.run_create(table=table, trigger=RunTrigger.API)
    dead.start(executor="worker-1:42")
    SyncRun.objects.filter(pk=dead.pk).update(task_id="dead-task", heartbeat_at=now - timedelta(seconds=31))
    locked_until = now + timedelta(hours=1)  # as a worker's pull leaves it: now + the cluster's retry
    for task_id in ("dead-task", "other-task"):
        OrmQ.objects.create(key="fdm", payload=SignedPackage.dumps({"id": task_id}), lock=locked_until)

    assert [run.pk for run in reaper.runs_fail_stale(now=now)] == [dead.pk]

    assert [queued.task_id() for queued in OrmQ.objects.filter(lock__gt=now)] == ["other-task"]
    dead.refresh_from_db()
    assert any(entry["message"] == "its task was taken off the queue" for entry in dead.log)
