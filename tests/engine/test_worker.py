"""Real django-q2 workers (`manage.py qcluster` in a subprocess) against the test database and the emulator."""

from __future__ import annotations

import os
import signal
from datetime import timedelta

import psycopg
import pytest
from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule

from syncengine import reaper, services
from syncengine.choices import RunStatus, RunTrigger
from syncengine.connections import target_dsn
from syncengine.models import SyncRun
from syncengine.pipeline.load import staging_prefix
from syncengine.schedules import SCHEDULED_SYNC_TASK

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# The cluster's scheduler looks for due schedules every 30 seconds of its guard loop.
SCHEDULER_WAIT_SECONDS = 120


def test_a_worker_runs_a_due_schedule_to_success(qcluster, make_table, seed_source, target_rows):
    table = make_table(schedule="hourly")
    seed_source(table.snowflake_table, rows=30)
    # The schedule the table's save created, made due now.
    Schedule.objects.filter(func=SCHEDULED_SYNC_TASK, args=str(table.pk)).update(
        next_run=timezone.now() - timedelta(seconds=1)
    )

    with qcluster() as cluster:
        run = cluster.wait_for(
            lambda: SyncRun.objects.filter(table=table, status__in=RunStatus.terminal()).first(),
            timeout=SCHEDULER_WAIT_SECONDS,
            what="the scheduled run to finish",
        )

    assert run.status == RunStatus.SUCCEEDED, f"{run.error_message}\n{cluster.log_tail()}"
    assert (run.trigger, run.attempt, run.rows_extracted, run.rows_inserted) == (
        RunTrigger.SCHEDULE,
        1,
        30,
        30,
    )
    assert run.task_id
    assert run.executor and run.executor.split(":")[-1] != str(os.getpid())
    assert target_rows(table) == 30
    schedule = Schedule.objects.get(func=SCHEDULED_SYNC_TASK, args=str(table.pk))
    assert schedule.next_run > timezone.now()  # moved on to the next slot; missed slots are not replayed


def test_a_worker_killed_mid_run_leaves_the_run_failed_and_the_target_intact(
    qcluster, make_table, seed_source, target, target_rows
):
    table = make_table()
    seed_source(table.snowflake_table, rows=20)
    first = services.run_execute(run_id=services.run_create(table=table, trigger=RunTrigger.COMMAND).pk)
    assert first.status == RunStatus.SUCCEEDED, first.error_message
    seed_source(table.snowflake_table, rows=30, start=21)
    target_name = f'"{table.postgres_schema}"."{table.postgres_table}"'

    # A report holding the target table stalls the run's publish step, so the worker is surely mid-run
    # (rows staged, nothing published) when it is killed.
    with psycopg.connect(target_dsn()) as report, qcluster() as cluster:
        report.execute(f"LOCK TABLE {target_name} IN ACCESS EXCLUSIVE MODE")
        run = services.run_enqueue(table=table, trigger=RunTrigger.API)
        blocked_backend = cluster.wait_for(
            lambda: target(
                "SELECT pid FROM pg_locks WHERE relation = to_regclass(%s) AND NOT granted", (target_name,)
            ),
            timeout=60,
            what="the run to reach its publish step",
        )[0][0]
        run.refresh_from_db()
        assert run.status == RunStatus.RUNNING
        assert run.stage  # it reported progress: rows were read, and it waits to publish them
        worker_pid = int(run.executor.rsplit(":", 1)[1])

        os.kill(worker_pid, signal.SIGKILL)
        report.rollback()
        cluster.wait_for(
            lambda: not target("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (blocked_backend,)),
            timeout=30,
            what="the killed worker's database session to end",
        )

    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING  # nobody is left to say otherwise ...
    assert target_rows(table) == 20  # ... and nothing of it was published

    # ... until the reaper runs: the table's lock died with the worker's session, so once the run has been
    # silent for the orphan grace period (minutes, not the hour-long task timeout) it is failed.
    assert reaper.runs_fail_stale() == []
    soon = timezone.now() + timedelta(seconds=settings.FDM_RUN_ORPHAN_GRACE_SECONDS + 1)
    assert soon < timezone.now() + timedelta(seconds=settings.SYNC_TIMEOUT_SECONDS)
    assert [reaped.pk for reaped in reaper.runs_fail_stale(now=soon)] == [run.pk]
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "session ended" in run.error_message and "presumed dead" in run.error_message
    assert target_rows(table) == 20

    # The reaper dropped the staging table the dead run left (the table's lock was free), named it, and
    # queued another attempt.
    reaped = next(entry for entry in run.log if entry["level"] == "error")
    assert len(reaped["fields"]["staging_dropped"]) == 1
    assert not target(
        "SELECT 1 FROM pg_tables WHERE schemaname = '_fdm_staging' AND starts_with(tablename, %s)",
        (staging_prefix(table.name),),
    )
    assert SyncRun.objects.get(retry_of=run).status == RunStatus.QUEUED

    # The dead run holds nothing: the next run takes the table and loads it all.
    after = services.run_execute(run_id=services.run_create(table=table, trigger=RunTrigger.COMMAND).pk)
    assert after.status == RunStatus.SUCCEEDED, after.error_message
    assert target_rows(table) == 50
