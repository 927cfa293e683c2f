"""The run record: lifecycle, terminal states, structured log, and no secrets stored."""

from __future__ import annotations

import pytest
from django.test import override_settings

from syncengine.choices import ErrorKind, RunStatus, RunTrigger
from syncengine.models import SyncRun
from syncengine.pipeline.errors import SourceSchemaError, TransientError
from syncengine.redaction import redact


@pytest.fixture
def run(make_table) -> SyncRun:
    table = make_table()
    return SyncRun.objects.create(table=table, table_name=table.name, trigger=RunTrigger.ADMIN)


def test_terminal_states_are_exactly_the_final_ones():
    assert RunStatus.terminal() == {"succeeded", "failed", "skipped", "cancelled"}
    assert RunStatus.active() == {"queued", "running"}
    assert RunStatus.terminal().isdisjoint(RunStatus.active())
    assert RunStatus.terminal() | RunStatus.active() == set(RunStatus.values)


def test_a_new_run_is_queued(run):
    assert run.status == RunStatus.QUEUED
    assert run.queued_at is not None
    assert run.started_at is None
    assert not run.is_terminal


def test_start_claims_a_queued_run_once(run):
    assert run.start(executor="host:1") is True
    assert run.status == RunStatus.RUNNING
    assert run.started_at is not None and run.heartbeat_at is not None
    assert run.executor == "host:1"

    second_claim = SyncRun.objects.get(pk=run.pk)
    assert second_claim.start(executor="host:2") is False
    assert SyncRun.objects.get(pk=run.pk).executor == "host:1"


def test_a_cancelled_run_cannot_be_started(run):
    run.finish(RunStatus.CANCELLED, message="cancelled before it started")
    assert run.start() is False
    assert run.status == RunStatus.CANCELLED


def test_finish_records_a_terminal_error_with_its_traceback(run):
    run.start()
    try:
        raise SourceSchemaError("column does not exist", table="orders", column="AMOUNT")
    except SourceSchemaError as exc:
        run.finish(RunStatus.FAILED, exc)

    stored = SyncRun.objects.get(pk=run.pk)
    assert stored.status == RunStatus.FAILED
    assert stored.is_terminal
    assert stored.finished_at >= stored.started_at
    assert stored.error_message == "orders.AMOUNT: column does not exist"
    assert stored.error_kind == ErrorKind.TERMINAL
    assert "SourceSchemaError" in stored.error_traceback
    assert "Traceback" in stored.error_traceback


def test_finish_marks_transient_errors(run):
    run.start()
    run.finish(RunStatus.FAILED, TransientError("connection reset", table="orders"))
    assert SyncRun.objects.get(pk=run.pk).error_kind == ErrorKind.TRANSIENT


def test_finish_refuses_a_non_terminal_status(run):
    with pytest.raises(ValueError, match="not a terminal"):
        run.finish(RunStatus.RUNNING)


def test_finish_keeps_a_cancel_request_made_meanwhile(run):
    run.start()
    SyncRun.objects.filter(pk=run.pk).update(cancel_requested=True)
    run.finish(RunStatus.SUCCEEDED)
    assert SyncRun.objects.get(pk=run.pk).cancel_requested is True


def test_finish_keeps_the_task_id_the_enqueuing_process_writes_meanwhile(run):
    # A fast worker claims the run before the process that enqueued it has stored the queue's task id.
    worker_copy = SyncRun.objects.get(pk=run.pk)
    worker_copy.start(executor="host:1")
    SyncRun.objects.filter(pk=run.pk).update(task_id="task-42")
    worker_copy.finish(RunStatus.SUCCEEDED)

    stored = SyncRun.objects.get(pk=run.pk)
    assert stored.task_id == "task-42"
    assert (stored.status, stored.executor) == (RunStatus.SUCCEEDED, "host:1")


def test_duration_runs_from_start_to_finish(run):
    assert run.duration is None
    run.start()
    run.finish(RunStatus.SUCCEEDED)
    assert run.duration == run.finished_at - run.started_at


def test_append_log_keeps_structured_entries(run):
    run.append_log("INFO", "extracted batch", rows=100, stage="extract")
    run.append_log(30, "drift detected", column="NEW_COL")
    stored = SyncRun.objects.get(pk=run.pk).log
    assert [entry["message"] for entry in stored[-2:]] == ["extracted batch", "drift detected"]
    assert stored[-2]["level"] == "info"
    assert stored[-2]["fields"] == {"rows": 100, "stage": "extract"}
    assert stored[-1]["level"] == "warning"
    assert all(set(entry) == {"ts", "level", "message", "fields"} for entry in stored)


@override_settings(FDM_RUN_LOG_LIMIT=120)
def test_the_log_is_capped_keeping_its_start_and_its_end(run):
    for index in range(300):
        run.append_log("info", f"entry {index}")
    log = SyncRun.objects.get(pk=run.pk).log
    assert len(log) == 120
    assert log[0]["message"] == "entry 0"
    assert log[49]["message"] == "entry 49"
    assert log[50]["fields"]["omitted_entries"] == 300 - 50 - 69
    assert log[-1]["message"] == "entry 299"


def test_secrets_never_reach_the_record(run):
    key = (
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0\n-----END ENCRYPTED PRIVATE KEY-----"
    )
    run.start()
    run.append_log(
        "error", "connect failed: password=hunter2 host=db", dsn="postgresql://app:s3cret@db:5432/x"
    )
    run.append_log("info", "settings", password="hunter2", private_key_passphrase="open-sesame")
    run.finish(RunStatus.FAILED, RuntimeError(f"could not load key {key} with passphrase='open-sesame'"))

    stored = SyncRun.objects.get(pk=run.pk)
    everything = f"{stored.error_message} {stored.error_traceback} {stored.log}"
    for secret in ("hunter2", "s3cret", "open-sesame", "MIIFHDBOBgkqhkiG9w0BBQ0"):
        assert secret not in everything
    assert "host=db" in everything  # only the secrets go


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password=abc host=x", "password=[redacted] host=x"),
        ('{"SNOWFLAKE_PASSWORD": "abc"}', '{"SNOWFLAKE_PASSWORD": [redacted]}'),
        ("redis://:tok@cache:6379/0", "redis://:[redacted]@cache:6379/0"),
        ("token: abc, next", "token: [redacted], next"),
        ("no secrets here", "no secrets here"),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected
