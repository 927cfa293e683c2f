"""Full mode: the target is replaced in one transaction; readers never see it empty or half-loaded, failures
leave it as it was, and what operators added to the table survives."""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants

from __future__ import annotations

import threading
import time
from decimal import Decimal

import psycopg
import pytest

from syncengine.dev.sampledata import insert_transactions, seed_transactions
from syncengine.pipeline.errors import (
    PipelineError,
    RunCancelled,
    TransientError,
    TypeOverflowError,
    ValidationFailed,
)
from syncengine.pipeline.spec import DriftPolicy

from .conftest import staging_tables


def _ledger(source, rows: list[tuple[int, str, str]]) -> None:
    source.sql(
        f"CREATE OR REPLACE TABLE {source.table('LEDGER')} (ID NUMBER(38,0) NOT NULL, AMOUNT NUMBER(18,2), "
        "NOTE VARCHAR, PRIMARY KEY (ID))"
    )
    for row in rows:
        source.sql(f"INSERT INTO {source.table('LEDGER')} VALUES (?, CAST(? AS NUMBER(18,2)), ?)", row)


def test_it_replaces_every_row_and_reports_counts(source, make_spec, sync, target):
    _ledger(source, [(1, "10.00", "a"), (2, "20.00", "b"), (3, "30.00", "c"), (4, "40.00", "d")])
    first = sync(make_spec("LEDGER"))
    assert (first.mode, first.extract.rows, first.load.rows, first.rows_inserted) == ("full", 4, 4, 4)
    assert first.rows_deleted == 0
    assert first.checks["row_counts_match"] and first.checks["primary_key_unique"]

    _ledger(source, [(2, "21.00", "b2"), (5, "50.00", "e")])
    second = sync(make_spec("LEDGER"))
    assert (second.extract.rows, second.rows_inserted, second.target_created) == (2, 2, False)
    assert second.rows_deleted == 4  # the rows the reload replaced
    assert target("SELECT id, amount, note FROM public.ledger ORDER BY id") == [
        (Decimal(2), Decimal("21.00"), "b2"),
        (Decimal(5), Decimal("50.00"), "e"),
    ]
    assert staging_tables(target) == []


def test_operator_indexes_grants_and_comments_survive(source, make_spec, sync, target):
    _ledger(source, [(1, "10.00", "a")])
    sync(make_spec("LEDGER"))
    target("CREATE INDEX ledger_note_idx ON public.ledger (note)")
    target("COMMENT ON TABLE public.ledger IS 'finance ledger'")
    target(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fdm_test_reader') THEN "
        "CREATE ROLE fdm_test_reader; END IF; END $$"
    )
    target("GRANT SELECT ON public.ledger TO fdm_test_reader")
    target("CREATE VIEW public.ledger_notes AS SELECT note FROM public.ledger")
    try:
        _ledger(source, [(7, "70.00", "g")])
        sync(make_spec("LEDGER"))

        assert target("SELECT count(*) FROM pg_indexes WHERE indexname = 'ledger_note_idx'") == [(1,)]
        assert target("SELECT obj_description('public.ledger'::regclass)") == [("finance ledger",)]
        assert target("SELECT has_table_privilege('fdm_test_reader', 'public.ledger', 'SELECT')") == [(True,)]
        assert target("SELECT note FROM public.ledger_notes") == [("g",)]
    finally:
        target("DROP VIEW public.ledger_notes")
        target("REVOKE ALL ON public.ledger FROM fdm_test_reader")


def test_a_cancelled_run_leaves_the_target_and_watermark_as_they_were(source, make_spec, sync, target):
    _ledger(source, [(i, f"{i}.00", "old") for i in range(1, 7)])
    spec = make_spec("LEDGER", batch_size=2)
    sync(spec)
    _ledger(source, [(i, f"{i}.50", "new") for i in range(1, 10)])

    calls = []

    def cancel_after_first_batch() -> bool:
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(RunCancelled):
        sync(spec, should_cancel=cancel_after_first_batch)

    assert target("SELECT count(*), min(note), max(note) FROM public.ledger") == [(6, "old", "old")]
    assert staging_tables(target) == []


def test_a_value_overflowing_its_column_fails_before_publishing(source, make_spec, sync, target):
    """The target keeps numeric(6,2) (drift policy ignore); a later batch holds a value that does not fit."""
    _ledger(source, [(1, "10.00", "a"), (2, "20.00", "b")])
    sync(make_spec("LEDGER"))
    target("ALTER TABLE public.ledger ALTER COLUMN amount TYPE numeric(6,2)")
    _ledger(source, [(1, "11.00", "a"), (2, "12.00", "b"), (3, "13.00", "c"), (4, "123456789.00", "d")])

    with pytest.raises(TypeOverflowError) as raised:
        sync(make_spec("LEDGER", batch_size=2, drift_policy=DriftPolicy.IGNORE))

    assert raised.value.table == "ledger" and raised.value.column == "amount"
    assert "numeric(6,2)" in str(raised.value)
    assert target("SELECT id, amount FROM public.ledger ORDER BY id") == [
        (Decimal(1), Decimal("10.00")),
        (Decimal(2), Decimal("20.00")),
    ]
    assert staging_tables(target) == []


def test_text_too_long_for_its_column_is_reported_by_postgres_with_the_column(
    source, make_spec, sync, target
):
    _ledger(source, [(1, "10.00", "ok")])
    sync(make_spec("LEDGER"))
    target("ALTER TABLE public.ledger ALTER COLUMN note TYPE varchar(3)")
    _ledger(source, [(1, "10.00", "ok"), (2, "10.00", "far too long")])

    with pytest.raises(TypeOverflowError) as raised:
        sync(make_spec("LEDGER", drift_policy=DriftPolicy.IGNORE))

    assert raised.value.column is not None and raised.value.column.startswith("note")
    assert target("SELECT id, note FROM public.ledger") == [(Decimal(1), "ok")]
    assert staging_tables(target) == []


def test_a_lock_held_by_a_reader_times_out_as_a_transient_failure(
    source, make_spec, sync, target, scratch_database
):
    _ledger(source, [(1, "10.00", "a")])
    sync(make_spec("LEDGER"))
    _ledger(source, [(2, "20.00", "b")])

    with psycopg.connect(scratch_database) as reader:
        reader.execute("SELECT count(*) FROM public.ledger").fetchone()  # holds ACCESS SHARE until it ends
        with pytest.raises(
            TransientError, match="held the target table longer than the publish lock timeout"
        ):
            sync(make_spec("LEDGER"), publish_lock_timeout=0.3)
        reader.rollback()

    assert target("SELECT id FROM public.ledger") == [(Decimal(1),)]
    assert staging_tables(target) == []


def test_readers_never_see_an_empty_or_half_loaded_table(
    source, make_spec, settings, sync, target, scratch_database
):
    seed_transactions(
        source.conn, database=source.database, schema="PUBLIC", table="TRANSACTIONS", rows=20_000
    )
    spec = make_spec("TRANSACTIONS", batch_size=5_000)
    sync(spec)
    insert_transactions(
        source.conn,
        database=source.database,
        schema="PUBLIC",
        table="TRANSACTIONS",
        rows=5_000,
        first_id=20_001,
    )

    seen: list[int] = []
    done = threading.Event()

    def read_continuously() -> None:
        with psycopg.connect(scratch_database, autocommit=True) as reader:
            while not done.is_set():
                seen.append(reader.execute("SELECT count(*) FROM public.transactions").fetchone()[0])
                time.sleep(0.001)

    reader = threading.Thread(target=read_continuously)
    reader.start()
    try:
        result = sync(spec)
    finally:
        done.set()
        reader.join()

    assert result.rows_inserted == 25_000
    assert set(seen) <= {20_000, 25_000}
    assert seen[0] == 20_000 and seen[-1] == 25_000


def test_the_primary_key_is_rebuilt_under_its_own_name(source, make_spec, sync, target):
    _ledger(source, [(1, "10.00", "a"), (2, "20.00", "b")])
    sync(make_spec("LEDGER"))
    target("ALTER TABLE public.ledger RENAME CONSTRAINT ledger_pkey TO ledger_by_id")
    _ledger(source, [(3, "30.00", "c")])

    sync(make_spec("LEDGER"))

    assert target(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'public.ledger'::regclass AND contype = 'p'"
    ) == [("ledger_by_id", "PRIMARY KEY (id)")]


def test_a_primary_key_with_storage_parameters_is_left_in_place(source, make_spec, sync, target):
    _ledger(source, [(1, "10.00", "a")])
    sync(make_spec("LEDGER"))
    target("ALTER INDEX public.ledger_pkey SET (fillfactor = 70)")
    index_before = target("SELECT 'public.ledger_pkey'::regclass::oid")
    _ledger(source, [(2, "20.00", "b")])

    sync(make_spec("LEDGER"))

    assert target("SELECT 'public.ledger_pkey'::regclass::oid") == index_before
    assert target("SELECT reloptions FROM pg_class WHERE relname = 'ledger_pkey'") == [(["fillfactor=70"],)]


def _index_definitions(target) -> list[tuple]:
    return target(
        "SELECT c.relname, pg_get_indexdef(c.oid), i.indisprimary FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'public.ledger'::regclass ORDER BY 1"
    )


def test_indexes_set_aside_for_the_load_come_back_as_they_were(source, make_spec, sync, target):
    _ledger(source, [(1, "10.00", "a"), (2, "20.00", "b")])
    sync(make_spec("LEDGER"))
    target("CREATE INDEX ledger_note_idx ON public.ledger (note) WITH (fillfactor = 80) WHERE amount > 0")
    target("CREATE UNIQUE INDEX ledger_note_amount_key ON public.ledger (lower(note), amount)")
    target("ALTER TABLE public.ledger ADD CONSTRAINT ledger_amount_unique UNIQUE (amount, id)")
    before = _index_definitions(target)
    oids_before = dict(target("SELECT relname, oid FROM pg_class WHERE relname LIKE 'ledger_%'"))
    _ledger(source, [(3, "30.00", "c"), (4, "40.00", "d"), (5, "50.00", "e")])

    result = sync(make_spec("LEDGER"))

    assert (result.rows_inserted, result.rows_deleted) == (3, 2)
    assert _index_definitions(target) == before
    oids_after = dict(target("SELECT relname, oid FROM pg_class WHERE relname LIKE 'ledger_%'"))
    assert oids_after["ledger_note_idx"] != oids_before["ledger_note_idx"]  # rebuilt, not maintained
    assert target(
        "SELECT conname, contype FROM pg_constraint WHERE conrelid = 'public.ledger'::regclass ORDER BY 1"
    ) == [("ledger_amount_unique", "u"), ("ledger_pkey", "p")]
    assert target("SELECT id FROM public.ledger WHERE note = 'd'") == [(Decimal(4),)]


def test_indexes_whose_definition_does_not_carry_everything_stay_in_place(source, make_spec, sync, target):
    _ledger(source, [(1, "10.00", "a")])
    sync(make_spec("LEDGER"))
    target("CREATE INDEX ledger_commented_idx ON public.ledger (note)")
    target("COMMENT ON INDEX public.ledger_commented_idx IS 'used by the month-end report'")
    target("CREATE INDEX ledger_clustered_idx ON public.ledger (amount)")
    target("CLUSTER public.ledger USING ledger_clustered_idx")
    target("CREATE INDEX ledger_expression_idx ON public.ledger ((amount * 2))")
    target("ALTER INDEX public.ledger_expression_idx ALTER COLUMN 1 SET STATISTICS 500")
    kept = ("ledger_commented_idx", "ledger_clustered_idx", "ledger_expression_idx")
    oids_before = target(
        "SELECT relname, oid FROM pg_class WHERE relname = ANY(%s) ORDER BY 1", (list(kept),)
    )
    _ledger(source, [(2, "20.00", "b")])

    sync(make_spec("LEDGER"))

    assert (
        target("SELECT relname, oid FROM pg_class WHERE relname = ANY(%s) ORDER BY 1", (list(kept),))
        == oids_before
    )
    assert target("SELECT obj_description('public.ledger_commented_idx'::regclass)") == [
        ("used by the month-end report",)
    ]
    assert target(
        "SELECT indisclustered FROM pg_index WHERE indexrelid = 'public.ledger_clustered_idx'::regclass"
    ) == [(True,)]


def test_a_failed_index_rebuild_leaves_the_old_rows_and_every_index(source, make_spec, sync, target):
    """A unique index the new rows violate fails the rebuild: the transaction rolls back as a whole."""
    _ledger(source, [(1, "10.00", "a"), (2, "20.00", "b")])
    sync(make_spec("LEDGER"))
    target("CREATE UNIQUE INDEX ledger_note_key ON public.ledger (note)")
    before = _index_definitions(target)
    _ledger(source, [(3, "30.00", "same"), (4, "40.00", "same")])

    with pytest.raises(PipelineError):
        sync(make_spec("LEDGER"))

    assert target("SELECT id, note FROM public.ledger ORDER BY id") == [(Decimal(1), "a"), (Decimal(2), "b")]
    assert _index_definitions(target) == before
    assert staging_tables(target) == []


def test_a_staged_row_gone_before_publishing_fails_the_run_and_keeps_the_old_rows(
    source, make_spec, sync, target
):
    """The INSERT's row count stands in for counting staging: a row missing from staging fails the run."""
    _ledger(source, [(1, "10.00", "a"), (2, "20.00", "b")])
    sync(make_spec("LEDGER"))
    _ledger(source, [(3, "30.00", "c"), (4, "40.00", "d"), (5, "50.00", "e")])

    def lose_a_staged_row(stage: str, done: int) -> None:
        if stage == "publish":
            (staging,) = staging_tables(target)
            target(f'DELETE FROM _fdm_staging."{staging}" WHERE id = 4')

    with pytest.raises(ValidationFailed, match="3 rows extracted .* 2 published"):
        sync(make_spec("LEDGER"), on_progress=lose_a_staged_row)

    assert target("SELECT id FROM public.ledger ORDER BY id") == [(Decimal(1),), (Decimal(2),)]
    assert staging_tables(target) == []
