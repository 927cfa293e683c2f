"""run_execute end to end: the real pipeline, the Snowflake emulator, and PostgreSQL as the target."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest
from django.test import override_settings
from django.utils import timezone
from django_q.models import OrmQ

from syncengine import recorder, services, specs
from syncengine.choices import ErrorKind, RunStatus, RunTrigger
from syncengine.connections import target_dsn
from syncengine.models import SyncRun
from syncengine.pipeline.locks import table_lock_key
from syncengine.pipeline.protection.keyring import Keyring

pytestmark = pytest.mark.django_db


@pytest.fixture
def orders(make_table, seed_source):
    """An incremental table whose source holds 25 rows."""
    table = make_table(sync_mode="incremental", incremental_column="updated_at", primary_key=["TXN_ID"])
    seed_source(table.snowflake_table, rows=25)
    return table


def execute(table, **kwargs) -> SyncRun:
    run = services.run_create(table=table, trigger=RunTrigger.COMMAND, **kwargs)
    return services.run_execute(run_id=run.pk)


def test_a_run_records_counts_stages_and_watermark(orders, seed_source, target_rows):
    first = execute(orders)

    assert first.status == RunStatus.SUCCEEDED, first.error_message
    assert (first.mode, first.rows_extracted, first.rows_loaded, first.rows_inserted) == ("full", 25, 25, 25)
    assert first.bytes_extracted > 0 and first.bytes_loaded > 0
    assert all(
        seconds is not None and seconds >= 0
        for seconds in (
            first.extract_seconds,
            first.transform_seconds,
            first.load_seconds,
            first.publish_seconds,
        )
    )
    assert first.watermark_before is None
    assert first.watermark_after is not None
    assert first.checks["row_counts_match"] is True
    assert first.config_hash == recorder.config_hash(specs.table_spec(orders))
    assert first.started_at <= first.finished_at
    assert [entry["message"] for entry in first.log][:2] == ["queued", "started"]
    assert "published" in [entry["message"] for entry in first.log]
    assert target_rows(orders) == 25

    seed_source(orders.snowflake_table, rows=5, start=26)
    second = execute(orders)

    assert second.status == RunStatus.SUCCEEDED, second.error_message
    assert second.mode == "incremental"
    assert second.watermark_before == first.watermark_after
    assert second.watermark_after != first.watermark_after
    assert second.rows_inserted == 5
    assert second.rows_extracted == 6  # the boundary row is read again: the watermark is inclusive
    assert target_rows(orders) == 30

    refresh = execute(orders, full_refresh=True)
    assert (refresh.status, refresh.mode, refresh.rows_extracted) == (RunStatus.SUCCEEDED, "full", 30)


def test_a_run_of_a_table_another_run_holds_is_skipped(orders, target):
    with psycopg.connect(target_dsn(), autocommit=True) as other_run:
        other_run.execute("SELECT pg_advisory_lock(%s)", (table_lock_key(orders.name),))
        run = execute(orders)

    assert run.status == RunStatus.SKIPPED
    assert run.skip_reason == "another process holds the table's lock in the target database"
    assert run.finished_at is not None
    assert run.error_message == ""
    assert SyncRun.objects.filter(retry_of=run).count() == 0
    assert target("SELECT to_regclass(%s)", (f'public."{orders.postgres_table}"',)) == [(None,)]


def test_a_skipped_run_names_the_run_that_holds_the_table_once(orders):
    holder = services.run_create(table=orders, trigger=RunTrigger.SCHEDULE)
    holder.start(executor="worker-1:42")
    SyncRun.objects.filter(pk=holder.pk).update(stage="load")
    holder.refresh_from_db()
    with psycopg.connect(target_dsn(), autocommit=True) as holding_session:
        holding_session.execute("SELECT pg_advisory_lock(%s)", (table_lock_key(orders.name),))
        run = execute(orders)

    started = timezone.localtime(holder.started_at)
    assert run.status == RunStatus.SKIPPED
    assert (
        run.skip_reason
        == f"another run (#{holder.pk}, started {started:%H:%M:%S}, stage load) holds the table"
    )
    assert run.log[-1]["message"] == f"skipped: {run.skip_reason}"


def test_a_terminal_failure_names_the_table_and_cause_and_is_not_retried(make_table, snowflake):
    table = make_table(snowflake_table="NO_SUCH_TABLE")
    run = execute(table)

    assert run.status == RunStatus.FAILED
    assert run.error_kind == ErrorKind.TERMINAL
    assert run.error_message.startswith(f"{table.name}: ")
    assert "NO_SUCH_TABLE" in run.error_message
    assert "Traceback" in run.error_traceback
    assert run.log[-1]["level"] == "error"
    assert SyncRun.objects.filter(retry_of=run).count() == 0


def test_a_missing_snowflake_setting_fails_the_run_naming_it(orders, monkeypatch):
    monkeypatch.delenv("SNOWFLAKE_ACCOUNT")
    run = execute(orders)
    assert (run.status, run.error_kind) == (RunStatus.FAILED, ErrorKind.TERMINAL)
    assert "SNOWFLAKE_ACCOUNT" in run.error_message


@override_settings(
    TARGET_DATABASE_URL="postgresql://fdm@127.0.0.1:1/unreachable?connect_timeout=2",
    FDM_SYNC_MAX_ATTEMPTS=3,
    FDM_RETRY_BACKOFF_SECONDS=0,
)
def test_a_transient_failure_is_retried_until_the_last_attempt(orders, django_capture_on_commit_callbacks):
    run = services.run_create(table=orders, trigger=RunTrigger.SCHEDULE)
    attempts = []
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            run = services.run_execute(run_id=run.pk)
        attempts.append(run)
        retry = SyncRun.objects.filter(retry_of=run).first()
        if retry is None:
            break
        run = retry

    assert [a.attempt for a in attempts] == [1, 2, 3]
    assert all(a.status == RunStatus.FAILED and a.error_kind == ErrorKind.TRANSIENT for a in attempts)
    assert all(a.error_message.startswith(f"{orders.name}: ") for a in attempts)
    assert "unavailable" in attempts[0].error_message
    assert SyncRun.objects.filter(retry_of=attempts[-1]).count() == 0  # no fourth attempt
    assert all(a.trigger == RunTrigger.SCHEDULE for a in attempts)
    queued_ids = sorted(item.task["args"][0] for item in OrmQ.objects.all())
    assert queued_ids == [attempts[1].pk, attempts[2].pk]


def test_a_run_cancelled_mid_way_leaves_the_target_as_it_was(orders, seed_source, target_rows, monkeypatch):
    assert execute(orders).status == RunStatus.SUCCEEDED
    seed_source(orders.snowflake_table, rows=40, start=26)
    monkeypatch.setattr(recorder, "CANCEL_POLL_INTERVAL_SECONDS", 0)
    orders.batch_size = 10
    orders.save()

    run = services.run_create(table=orders, trigger=RunTrigger.ADMIN, full_refresh=True)

    def cancel_on_first_batch(stage: str, rows: int) -> None:
        if stage == "extract":
            services.run_cancel(run=SyncRun.objects.get(pk=run.pk))

    run = services.run_execute(run_id=run.pk, on_progress=cancel_on_first_batch)

    assert run.status == RunStatus.CANCELLED
    assert "cancelled" in run.error_message
    assert target_rows(orders) == 25


def test_config_hash_is_stable_and_follows_the_spec(orders):
    spec = specs.table_spec(orders)
    assert recorder.config_hash(spec) == recorder.config_hash(specs.table_spec(orders))
    assert len(recorder.config_hash(spec)) == 64
    assert recorder.config_hash(dataclasses.replace(spec, batch_size=7)) != recorder.config_hash(spec)


def test_a_queued_run_is_executed_only_once(orders):
    run = services.run_create(table=orders, trigger=RunTrigger.API)
    first = services.run_execute(run_id=run.pk)
    again = services.run_execute(run_id=run.pk)  # a redelivered task
    assert first.status == again.status == RunStatus.SUCCEEDED
    assert again.finished_at == first.finished_at


def test_a_run_never_writes_in_clear_a_column_another_table_encrypts(
    make_table, seed_source, target, monkeypatch
):
    monkeypatch.setenv("FDM_ENCRYPTION_KEYS", Keyring.generate("policy").format())
    clear = make_table(primary_key=["TXN_ID"])
    seed_source(clear.snowflake_table, rows=5)
    # Created after the clear table, on the same source: the clear table's next run must not copy CURRENCY.
    make_table(
        snowflake_table=clear.snowflake_table,
        primary_key=["TXN_ID"],
        encryption_mode="columns",
        encrypted_columns=["CURRENCY"],
    )
    run = services.run_execute(run_id=services.run_create(table=clear, trigger=RunTrigger.COMMAND).pk)
    assert run.status == RunStatus.FAILED and run.error_kind == "terminal"
    assert "would store 'CURRENCY' in clear" in run.error_message
    assert target("SELECT to_regclass(%s)", (f"public.{clear.postgres_table}",)) == [(None,)]

    clear.clear_columns = {"CURRENCY": "the treasury report needs the currency in clear"}
    clear.save()
    run = services.run_execute(run_id=services.run_create(table=clear, trigger=RunTrigger.COMMAND).pk)
    assert run.status == RunStatus.SUCCEEDED, run.error_message
