"""One run per table: a second run while the first holds the table is refused with TableBusy."""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from syncengine.pipeline.errors import TableBusy
from syncengine.pipeline.load import STAGING_SCHEMA, staging_prefix
from syncengine.pipeline.locks import BOOTSTRAP_LOCK_KEY, held_table_lock_keys, table_lock_key, try_lock_table
from syncengine.pipeline.spec import TableSpec

from .conftest import staging_tables


@pytest.fixture
def ledger(source):
    source.sql(
        f"CREATE TABLE {source.table('LEDGER')} (ID NUMBER(38,0) NOT NULL, NOTE VARCHAR, PRIMARY KEY (ID))"
    )
    for key in range(1, 8):
        source.sql(f"INSERT INTO {source.table('LEDGER')} VALUES (?, ?)", (key, f"row {key}"))


def test_a_second_run_of_the_same_table_gets_table_busy(ledger, make_spec, sync, target):
    spec = make_spec("LEDGER", batch_size=2)
    outcomes: list[object] = []

    def start_a_second_run(stage: str, rows: int) -> None:
        if stage == "extract" and not outcomes:
            try:
                outcomes.append(sync(spec))
            except TableBusy as busy:
                outcomes.append(busy)

    first = sync(spec, on_progress=start_a_second_run)

    assert first.rows_inserted == 7
    assert isinstance(outcomes[0], TableBusy)
    assert outcomes[0].terminal and outcomes[0].table == "ledger"
    assert target("SELECT count(*) FROM public.ledger") == [(7,)]


def test_other_tables_run_while_one_is_busy(ledger, source, make_spec, sync):
    source.sql(f"CREATE TABLE {source.table('OTHER')} (ID NUMBER(38,0))")
    source.sql(f"INSERT INTO {source.table('OTHER')} VALUES (1)")
    seen: list[int] = []

    def run_another_table(stage: str, rows: int) -> None:
        if stage == "extract" and not seen:
            seen.append(sync(make_spec("OTHER")).rows_inserted)

    sync(make_spec("LEDGER", batch_size=2), on_progress=run_another_table)
    assert seen == [1]


def test_a_killed_workers_lock_and_staging_table_are_released(
    ledger, make_spec, sync, target, scratch_database
):
    spec = make_spec("LEDGER")
    sync(spec)  # creates fdm's schemas
    leftover = staging_prefix(spec.name) + "deadbeef"
    target(f'CREATE UNLOGGED TABLE "{STAGING_SCHEMA}"."{leftover}" (id numeric)')

    worker = psycopg.connect(scratch_database, autocommit=True)
    worker.execute("SELECT pg_advisory_lock(%s)", (table_lock_key(spec.name),))
    with pytest.raises(TableBusy):
        sync(spec)
    target("SELECT pg_terminate_backend(%s)", (worker.info.backend_pid,))
    worker.close()

    messages: list[str] = []
    result = sync(spec, log=lambda level, message, **fields: messages.append(message))

    assert result.rows_inserted == 7
    assert "dropped a staging table left by an interrupted run" in messages
    assert staging_tables(target) == []


def test_held_table_locks_are_read_back_from_pg_locks_with_their_sign(scratch_database):
    names = [f"table_{n}" for n in range(12)]
    assert {table_lock_key(name) < 0 for name in names} == {True, False}  # both signs are exercised
    held, free = names[:8], names[8:]
    with psycopg.connect(scratch_database, autocommit=True) as holder:
        for name in held:
            assert try_lock_table(holder, name)
        with psycopg.connect(scratch_database, autocommit=True) as observer:
            keys = held_table_lock_keys(observer)

    assert {table_lock_key(name) for name in held} <= keys
    assert not {table_lock_key(name) for name in free} & keys


def test_first_runs_of_two_tables_create_their_shared_new_schema_once(
    ledger, source, make_spec, sync, target, scratch_database
):
    source.sql(f"CREATE TABLE {source.table('OTHER')} (ID NUMBER(38,0))")
    source.sql(f"INSERT INTO {source.table('OTHER')} VALUES (1)")
    sync(make_spec("LEDGER"))  # fdm's own schemas exist from here on
    specs = [
        make_spec("LEDGER", name="ledger_copy", target_schema="fresh"),
        make_spec("OTHER", target_schema="fresh"),
    ]
    outcomes: dict[str, object] = {}

    def run(spec: TableSpec) -> None:
        try:
            outcomes[spec.name] = sync(spec)
        except Exception as exc:  # recorded for the assertion below
            outcomes[spec.name] = exc

    # Both publishes start their transaction, then queue on the schema-creation lock held here; released
    # together, the second must see the schema the first committed while it waited.
    with psycopg.connect(scratch_database, autocommit=True) as gate:
        gate.execute("SELECT pg_advisory_lock(%s)", (BOOTSTRAP_LOCK_KEY,))
        threads = [threading.Thread(target=run, args=(spec,)) for spec in specs]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            waiting = target(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objsubid = 1"
            )[0][0]
            if waiting == 2:
                break
            time.sleep(0.05)
        assert waiting == 2, "both runs should be waiting to create the schema"
        gate.execute("SELECT pg_advisory_unlock(%s)", (BOOTSTRAP_LOCK_KEY,))
        for thread in threads:
            thread.join(timeout=60)

    assert {name: type(outcome).__name__ for name, outcome in outcomes.items()} == {
        "ledger_copy": "SyncResult",
        "other": "SyncResult",
    }
    assert target("SELECT count(*) FROM fresh.ledger") == [(7,)]
    assert target("SELECT count(*) FROM fresh.other") == [(1,)]
