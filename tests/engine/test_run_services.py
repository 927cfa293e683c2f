"""Run services that need no pipeline: enqueue, scheduled requests, cancel, retry, and the stale-run reaper."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from syncengine import services, tasks
from syncengine.choices import ErrorKind, RunStatus, RunTrigger
from syncengine.connections import target_dsn
from syncengine.models import SyncRun
from syncengine.pipeline.locks import try_lock_table
from syncengine.schedules import SCHEDULED_SYNC_TASK

pytestmark = pytest.mark.django_db


def queued_tasks() -> list[dict]:
    return [item.task for item in OrmQ.objects.all()]


def test_enqueue_records_a_queued_run_and_queues_its_id(make_table, django_capture_on_commit_callbacks):
    table = make_table()
    user = get_user_model().objects.create_user("ops", password="x")
    with django_capture_on_commit_callbacks(execute=True):
        run = services.run_enqueue(
            table=table, trigger=RunTrigger.ADMIN, full_refresh=True, requested_by=user
        )

    run.refresh_from_db()
    assert (run.status, run.trigger, run.full_refresh, run.requested_by) == ("queued", "admin", True, user)
    assert run.table_name == table.name
    assert run.log[0]["message"] == "queued"
    [task] = queued_tasks()
    assert task["func"] == "syncengine.tasks.execute_run"
    assert task["args"] == (run.pk,)  # the id, never the object
    assert run.task_id == task["id"]


def test_nothing_is_queued_until_the_transaction_commits(make_table, django_capture_on_commit_callbacks):
    table = make_table()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.run_enqueue(table=table, trigger=RunTrigger.API)
        assert queued_tasks() == []
    assert len(callbacks) == 1


def test_a_scheduled_request_queues_a_run(make_table, django_capture_on_commit_callbacks):
    table = make_table(schedule="hourly")
    with django_capture_on_commit_callbacks(execute=True):
        outcome = tasks.scheduled_sync(table.pk)
    run = SyncRun.objects.get(table=table)
    assert outcome == f"run #{run.pk} queued"
    assert run.trigger == RunTrigger.SCHEDULE
    assert [task["args"] for task in queued_tasks()] == [(run.pk,)]


def test_a_scheduled_request_is_skipped_while_a_run_of_the_table_is_active(make_table):
    table = make_table(schedule="hourly")
    first = services.run_create(table=table, trigger=RunTrigger.SCHEDULE)
    second = services.run_enqueue_scheduled(table_id=table.pk)
    assert second.status == RunStatus.SKIPPED
    assert f"run #{first.pk} of this table is still queued" in second.skip_reason
    assert second.finished_at is not None


def test_a_scheduled_request_for_a_disabled_table_is_recorded_as_skipped(make_table):
    table = make_table(schedule="hourly")
    table.enabled = False
    table.save()
    run = services.run_enqueue_scheduled(table_id=table.pk)
    assert (run.status, run.skip_reason) == (RunStatus.SKIPPED, "the table is disabled")


def test_a_schedule_left_behind_by_a_deleted_table_removes_itself(make_table):
    table = make_table(schedule="hourly")
    table_id = table.pk
    Schedule.objects.create(func=SCHEDULED_SYNC_TASK, args=str(table_id), schedule_type=Schedule.HOURLY)
    TableConfigModel = type(table)
    TableConfigModel.objects.filter(pk=table_id).delete()  # bulk delete: no signal
    assert tasks.scheduled_sync(table_id) is None
    assert not Schedule.objects.filter(func=SCHEDULED_SYNC_TASK, args=str(table_id)).exists()


def test_cancelling_a_queued_run_is_immediate(make_table):
    run = services.run_create(table=make_table(), trigger=RunTrigger.ADMIN)
    run = services.run_cancel(run=run)
    assert run.status == RunStatus.CANCELLED
    assert run.finished_at is not None
    assert run.start() is False  # a worker that picks up its task later does nothing


def test_cancelling_a_running_run_asks_the_worker_to_stop(make_table):
    run = services.run_create(table=make_table(), trigger=RunTrigger.ADMIN)
    run.start()
    run = services.run_cancel(run=run)
    assert run.status == RunStatus.RUNNING
    assert run.cancel_requested is True


def test_history_survives_deleting_the_table(make_table):
    table = make_table()
    run = services.run_create(table=table, trigger=RunTrigger.COMMAND)
    table.delete()
    run.refresh_from_db()
    assert run.table is None
    assert run.table_name == table.name


@override_settings(FDM_SYNC_MAX_ATTEMPTS=3, FDM_RETRY_BACKOFF_SECONDS=60)
def test_retries_back_off_and_stop_after_the_last_attempt(make_table):
    run = services.run_create(table=make_table(), trigger=RunTrigger.SCHEDULE)
    run.start()
    run.finish(RunStatus.FAILED, message="connection reset", error_kind=ErrorKind.TRANSIENT)

    second = services.run_retry(run=run)
    assert (second.attempt, second.retry_of, second.status) == (2, run, RunStatus.QUEUED)
    assert timedelta(seconds=59) < second.not_before - timezone.now() <= timedelta(seconds=60)
    waiting = Schedule.objects.get(name=f"fdm-retry:{second.pk}")
    assert (waiting.func, waiting.args, waiting.schedule_type) == (
        "syncengine.tasks.dispatch_run",
        str(second.pk),
        "O",
    )
    assert waiting.next_run == second.not_before

    second.start()
    second.finish(RunStatus.FAILED, message="connection reset", error_kind=ErrorKind.TRANSIENT)
    third = services.run_retry(run=second)
    assert third.attempt == 3
    assert timedelta(seconds=119) < third.not_before - timezone.now() <= timedelta(seconds=120)

    third.start()
    third.finish(RunStatus.FAILED, message="connection reset", error_kind=ErrorKind.TRANSIENT)
    assert services.run_retry(run=third) is None


@override_settings(FDM_RETRY_BACKOFF_SECONDS=0)
def test_a_retry_without_backoff_is_queued_at_once(make_table, django_capture_on_commit_callbacks):
    run = services.run_create(table=make_table(), trigger=RunTrigger.SCHEDULE)
    run.start()
    run.finish(RunStatus.FAILED, message="connection reset", error_kind=ErrorKind.TRANSIENT)
    with django_capture_on_commit_callbacks(execute=True):
        retry = services.run_retry(run=run)
    assert [task["args"] for task in queued_tasks()] == [(retry.pk,)]


def test_a_due_retry_is_dispatched_to_the_queue(make_table, django_capture_on_commit_callbacks):
    retry = services.run_create(table=make_table(), trigger=RunTrigger.SCHEDULE)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.dispatch_run(retry.pk) == RunStatus.QUEUED
    assert [task["args"] for task in queued_tasks()] == [(retry.pk,)]


def test_cancelling_a_waiting_retry_removes_its_schedule(make_table):
    run = services.run_create(table=make_table(), trigger=RunTrigger.SCHEDULE)
    run.start()
    run.finish(RunStatus.FAILED, message="timeout", error_kind=ErrorKind.TRANSIENT)
    retry = services.run_retry(run=run)
    services.run_cancel(run=retry)
    assert not Schedule.objects.filter(name=f"fdm-retry:{retry.pk}").exists()


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

    failed = services.runs_fail_stale(now=now)

    assert [run.pk for run in failed] == [stale.pk]
    stale.refresh_from_db()
    assert stale.status == RunStatus.FAILED
    assert stale.error_kind == ErrorKind.TRANSIENT
    assert "presumed dead" in stale.error_message
    assert stale.error_message.startswith(f"{table.name}: ")
    assert stale.log[-1]["fields"]["executor"] == "worker-1:42"
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
        failed = services.runs_fail_stale(now=now)

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

    assert [run.pk for run in services.runs_fail_stale(now=now)] == [forgotten.pk]
    forgotten.refresh_from_db()
    assert forgotten.status == RunStatus.FAILED
    assert "qcluster" in forgotten.error_message
    assert SyncRun.objects.get(pk=waiting_retry.pk).status == RunStatus.QUEUED
    assert SyncRun.objects.get(pk=fresh.pk).status == RunStatus.QUEUED
    assert tasks.reap_stale_runs() == 0


def test_a_scheduled_run_of_a_table_disabled_since_it_was_queued_is_skipped(make_table):
    table = make_table(schedule="hourly")
    run = services.run_create(table=table, trigger=RunTrigger.SCHEDULE)
    table.enabled = False
    table.save()
    run = services.run_execute(run_id=run.pk)
    assert (run.status, run.skip_reason) == (RunStatus.SKIPPED, "the table is disabled")


def test_a_run_whose_table_was_deleted_before_it_started_fails(make_table):
    table = make_table()
    run = services.run_create(table=table, trigger=RunTrigger.ADMIN)
    table.delete()
    run = services.run_execute(run_id=run.pk)
    assert (run.status, run.error_kind) == (RunStatus.FAILED, ErrorKind.TERMINAL)
    assert run.error_message == f"{table.name}: the table's configuration was deleted before the run started"
