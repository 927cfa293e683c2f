"""After a full load, the process that ran it vacuums and analyzes the target, under the table's lock, and
gives up rather than wait on a session that holds the table."""

from __future__ import annotations

import psycopg
import pytest

from syncengine import maintenance, services
from syncengine.choices import RunStatus, RunTrigger
from syncengine.connections import target_dsn
from syncengine.pipeline.locks import table_lock_key

pytestmark = pytest.mark.django_db


def vacuum_stats(table) -> tuple:
    with psycopg.connect(target_dsn(), autocommit=True) as conn:
        return conn.execute(
            "SELECT last_vacuum IS NOT NULL, last_analyze IS NOT NULL FROM pg_stat_user_tables "
            "WHERE schemaname = %s AND relname = %s",
            (table.postgres_schema, table.postgres_table),
        ).fetchone()


def full_load(make_table, seed_source):
    table = make_table()
    seed_source(table.snowflake_table, rows=30)
    run = services.run_execute(run_id=services.run_create(table=table, trigger=RunTrigger.COMMAND).pk)
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    return table, run


def test_a_full_load_vacuums_and_analyzes_its_target(make_table, seed_source):
    table, run = full_load(make_table, seed_source)

    assert vacuum_stats(table) == (True, True)
    messages = [entry["message"] for entry in run.log]
    assert "vacuumed and analyzed the target after the full load" in messages


def test_the_vacuum_skips_a_table_another_run_holds(make_table, seed_source):
    _, run = full_load(make_table, seed_source)

    with psycopg.connect(target_dsn(), autocommit=True) as other_run:
        other_run.execute("SELECT pg_advisory_lock(%s)", (table_lock_key(run.table_name),))
        done = maintenance.table_vacuum_after_load(run=run)

    assert done == {"vacuumed": False}
    run.refresh_from_db()
    assert run.log[-1]["message"] == "vacuum skipped: another run holds the table"


def test_the_vacuum_gives_up_on_a_session_that_holds_the_table_and_the_run_stays_succeeded(
    make_table, seed_source
):
    table, run = full_load(make_table, seed_source)

    with psycopg.connect(target_dsn()) as holder:
        holder.execute(
            f'LOCK TABLE "{table.postgres_schema}"."{table.postgres_table}" IN ACCESS EXCLUSIVE MODE'
        )
        done = maintenance.table_vacuum_after_load(run=run)
        holder.rollback()

    assert done == {"vacuumed": False}
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert run.log[-1]["message"] == "vacuum after the full load skipped"
    assert "lock timeout" in run.log[-1]["fields"]["reason"]
