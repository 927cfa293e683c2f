"""`manage.py sync_table`: a foreground sync with progress and a summary, and exit codes 0 / 1 / 2 / 3."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO

import psycopg
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from syncengine.choices import RunStatus, RunTrigger
from syncengine.connections import target_dsn
from syncengine.management.commands.sync_table import Command
from syncengine.models import SyncRun
from syncengine.pipeline.locks import table_lock_key


@pytest.fixture
def orders(make_table, seed_source):
    table = make_table(sync_mode="incremental", incremental_column="updated_at", primary_key=["TXN_ID"])
    seed_source(table.snowflake_table, rows=12)
    return table


@pytest.mark.django_db
def test_a_successful_sync_shows_a_summary_and_exits_0(orders):
    out = StringIO()
    call_command("sync_table", orders.name, stdout=out)

    run = SyncRun.objects.get(table=orders)
    assert (run.status, run.trigger) == (RunStatus.SUCCEEDED, RunTrigger.COMMAND)
    text = out.getvalue()
    assert f"run #{run.pk} succeeded" in text
    assert "12 extracted" in text and "12 inserted" in text
    assert "rows/s" in text
    assert "extract" in text and "publish" in text
    assert "Watermark" in text and "->" in text


@pytest.mark.django_db
def test_full_refresh_is_passed_on(orders):
    call_command("sync_table", orders.name, stdout=StringIO())
    call_command("sync_table", orders.name, "--full-refresh", stdout=StringIO())
    latest = SyncRun.objects.filter(table=orders).order_by("-id").first()
    assert (latest.full_refresh, latest.mode, latest.rows_extracted) == (True, "full", 12)


@pytest.mark.django_db
def test_a_failed_sync_exits_1(make_table, snowflake):
    table = make_table(snowflake_table="MISSING_TABLE")
    with pytest.raises(CommandError) as raised:
        call_command("sync_table", table.name, stdout=StringIO())
    assert raised.value.returncode == 1
    assert "failed" in str(raised.value) and "MISSING_TABLE" in str(raised.value)
    run = SyncRun.objects.get(table=table)
    assert run.status == RunStatus.FAILED
    assert SyncRun.objects.filter(retry_of=run).count() == 0  # the operator re-runs a foreground sync


@pytest.mark.django_db
def test_a_sync_skipped_because_the_table_is_busy_exits_3(orders):
    with psycopg.connect(target_dsn(), autocommit=True) as other_run:
        other_run.execute("SELECT pg_advisory_lock(%s)", (table_lock_key(orders.name),))
        with pytest.raises(CommandError) as raised:
            call_command("sync_table", orders.name, stdout=StringIO())
    assert raised.value.returncode == 3
    assert "skipped" in str(raised.value)
    assert SyncRun.objects.get(table=orders).status == RunStatus.SKIPPED


@pytest.mark.django_db
def test_an_unknown_table_is_named_in_the_error(orders):
    with pytest.raises(CommandError) as raised:
        call_command("sync_table", "no_such_table", stdout=StringIO())
    assert raised.value.returncode == 2
    assert "no table named 'no_such_table'" in str(raised.value)
    assert orders.name in str(raised.value)
    assert SyncRun.objects.count() == 0


def test_help_explains_the_exit_codes():
    text = Command().create_parser("manage.py", "sync_table").format_help()
    assert "--full-refresh" in text
    assert "exit status: 0" in text and "3 it was skipped" in text


@pytest.mark.django_db(transaction=True)
def test_from_the_shell_a_failure_exits_1_with_one_line_on_stderr(make_table, snowflake, test_database_url):
    table = make_table(snowflake_table="ABSENT")
    result = subprocess.run(
        [sys.executable, "manage.py", "sync_table", table.name],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DATABASE_URL": test_database_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1, result.stderr
    assert error_lines[0].startswith("CommandError: run #")
    assert "ABSENT" in error_lines[0]


@pytest.mark.django_db
def test_from_and_to_backfill_a_range_and_leave_the_watermark(orders, snowflake, target):
    call_command("sync_table", orders.name, stdout=StringIO())
    first = SyncRun.objects.get(table=orders)
    # Corrected in place: the cursor does not move, so only a backfill of their range picks them up.
    snowflake.execute(f"UPDATE {orders.source_display} SET AMOUNT = 999 WHERE TXN_ID IN (3, 4, 9)")  # noqa: S608
    out = StringIO()

    call_command(
        "sync_table", orders.name, "--from", "2026-01-01T00:03:00", "--to", "2026-01-01 00:05:00", stdout=out
    )

    run = SyncRun.objects.filter(table=orders).latest("id")
    assert (run.status, run.trigger) == (RunStatus.SUCCEEDED, RunTrigger.BACKFILL)
    assert (run.backfill_from, run.backfill_to) == ("2026-01-01T00:03:00", "2026-01-01 00:05:00")
    assert (run.rows_extracted, run.rows_updated) == (3, 2)
    assert run.checks["backfill"] == {
        "from": "2026-01-01T00:03:00",
        "to": "2026-01-01 00:05:00",
        "type": "timestamp_ntz",
    }
    assert run.watermark_after == first.watermark_after
    assert "Backfill" in out.getvalue()
    changed = target(
        f"SELECT txn_id FROM {orders.postgres_schema}.{orders.postgres_table} WHERE amount = 999 ORDER BY txn_id"  # noqa: S608
    )
    assert [row[0] for row in changed] == [3, 4]


@pytest.mark.django_db
def test_a_bad_from_value_exits_1_naming_the_flag_and_records_nothing(orders):
    call_command("sync_table", orders.name, stdout=StringIO())

    with pytest.raises(CommandError) as raised:
        call_command("sync_table", orders.name, "--from", "soon", stdout=StringIO())

    assert raised.value.returncode == 1
    assert "--from" in str(raised.value) and "'soon'" in str(raised.value)
    assert SyncRun.objects.filter(table=orders).count() == 1


@pytest.mark.django_db
def test_allow_deletes_is_recorded_on_the_run(orders):
    call_command("sync_table", orders.name, "--allow-deletes", stdout=StringIO())
    assert SyncRun.objects.get(table=orders).allow_deletes is True


@pytest.mark.django_db
def test_a_tripped_delete_guard_exits_1_and_deletes_nothing_until_deletes_are_allowed(
    make_table, seed_source, snowflake, target_rows
):
    table = make_table(
        sync_mode="incremental",
        incremental_column="updated_at",
        primary_key=["TXN_ID"],
        deletes_mode="hard",
        deletes_max_ratio=0.1,
    )
    seed_source(table.snowflake_table, rows=10)
    call_command("sync_table", table.name, stdout=StringIO())
    snowflake.execute(f"DELETE FROM {table.source_display} WHERE TXN_ID <= 5")  # noqa: S608

    with pytest.raises(CommandError) as raised:
        call_command("sync_table", table.name, stdout=StringIO())

    assert raised.value.returncode == 1
    assert "5 of 10 rows" in str(raised.value) and "--allow-deletes" in str(raised.value)
    assert target_rows(table) == 10
    assert SyncRun.objects.filter(table=table).latest("id").error_kind == "terminal"

    call_command("sync_table", table.name, "--allow-deletes", stdout=StringIO())

    run = SyncRun.objects.filter(table=table).latest("id")
    assert (run.status, run.rows_deleted, run.allow_deletes) == (RunStatus.SUCCEEDED, 5, True)
    assert target_rows(table) == 5
