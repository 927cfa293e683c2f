"""Run services that need no pipeline: enqueue, scheduled requests, cancel and retry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from syncengine import services, tasks
from syncengine.choices import ErrorKind, RunStatus, RunTrigger
from syncengine.models import SyncRun
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
