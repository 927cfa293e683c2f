"""After a full load, the target is vacuumed and analyzed on a worker, under the table's lock."""

from __future__ import annotations

import psycopg
import pytest
from django_q.models import OrmQ

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


def test_a_full_load_queues_a_vacuum_that_analyzes_the_target(
    make_table, seed_source, django_capture_on_commit_callbacks
):
    table = make_table()
    seed_source(table.snowflake_table, rows=30)
    with django_capture_on_commit_callbacks(execute=True):
        run = services.run_execute(run_id=services.run_create(table=table, trigger=RunTrigger.COMMAND).pk)
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    assert [item.task["func"] for item in OrmQ.objects.all()] == [services.VACUUM_TASK]

    done = maintenance.vacuum_task(run.pk)

    assert done["vacuumed"] is True
    assert vacuum_stats(table) == (True, True)
    run.refresh_from_db()
    assert run.log[-1]["message"] == "vacuumed and analyzed the target after the full load"


def test_the_vacuum_waits_for_no_run_it_skips_a_table_another_run_holds(make_table, seed_source):
    table = make_table()
    seed_source(table.snowflake_table, rows=5)
    run = services.run_execute(run_id=services.run_create(table=table, trigger=RunTrigger.COMMAND).pk)

    with psycopg.connect(target_dsn(), autocommit=True) as other_run:
        other_run.execute("SELECT pg_advisory_lock(%s)", (table_lock_key(table.name),))
        done = maintenance.vacuum_task(run.pk)

    assert done == {"vacuumed": False}
    run.refresh_from_db()
    assert run.log[-1]["message"] == "vacuum skipped: another run holds the table"
