"""The light check after each run: counts and exact sums on both sides, stored with the run's checks; a
mismatch marks the check, never the published data."""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants

from __future__ import annotations

import snowflake.connector

from syncengine.pipeline.backfill import BackfillRequest
from syncengine.pipeline.runner import run_sync
from syncengine.pipeline.spec import EncryptionMode, EncryptionSpec
from tests.pipeline.test_protection import KEYRING


def _ledger(source) -> str:
    table = source.table("LEDGER")
    source.sql(
        f"CREATE TABLE {table} (ID NUMBER(38,0) NOT NULL, AMOUNT NUMBER(18,2), RATIO FLOAT, SECRET NUMBER(10,0), "
        "UPDATED_AT TIMESTAMP_NTZ, PRIMARY KEY (ID))"
    )
    source.sql(
        f"INSERT INTO {table} VALUES (1, 10.01, 0.1, 7, '2024-01-01 00:00:00'), "
        "(2, 20.02, 0.2, 8, '2024-01-02 00:00:00'), (3, -0.03, NULL, 9, '2024-01-03 00:00:00')"
    )
    return table


def test_a_full_run_records_equal_counts_and_exact_sums(source, make_spec, sync):
    _ledger(source)

    result = sync(make_spec("LEDGER"))

    check = result.checks["reconciliation"]
    assert check["status"] == "equal"
    assert check["scope"] == "table"
    assert check["rows"] == {"source": 3, "target": 3}
    assert check["sums"]["amount"]["target"] == "30.00"
    assert set(check["sums"]) == {"id", "amount", "ratio", "secret"}
    # Real Snowflake answers AT(STATEMENT => the extract's query id); the emulator cannot, and the check says
    # that it read the source as it was at check time instead.
    assert check["source_as_of"]["at"] == "check"
    assert "syntax error" in check["source_as_of"]["time_travel"]


def test_encrypted_columns_are_counted_but_not_summed(source, make_spec, sync):
    _ledger(source)
    spec = make_spec("LEDGER", encryption=EncryptionSpec(mode=EncryptionMode.COLUMNS, columns=("SECRET",)))

    check = sync(spec, keyring=KEYRING).checks["reconciliation"]

    assert check["status"] == "equal"
    assert "secret" not in check["sums"]


def test_an_incremental_run_is_checked_over_the_range_it_read(source, make_spec, sync, target):
    table = _ledger(source)
    spec = make_spec("LEDGER", watermark_column="UPDATED_AT")
    sync(spec)
    # A row below the watermark changed behind fdm's back is outside the next run's range.
    target("UPDATE public.ledger SET amount = 0 WHERE id = 1")
    source.sql(f"INSERT INTO {table} VALUES (4, 40.04, 0.4, 10, '2024-01-04 00:00:00')")

    check = sync(spec).checks["reconciliation"]

    assert check["status"] == "equal"
    assert check["scope"] == "range"
    assert check["rows"] == {"source": 2, "target": 2}  # the boundary row 3 and the new row 4


def test_a_source_changed_before_the_check_is_a_mismatch_but_the_run_publishes(
    source, make_spec, sync, target
):
    table = _ledger(source)
    planted = []

    def plant(stage: str, rows: int) -> None:
        if stage == "publish" and not planted:
            planted.append(True)
            source.sql(f"UPDATE {table} SET AMOUNT = AMOUNT + 0.01 WHERE ID = 2")

    result = sync(make_spec("LEDGER"), on_progress=plant)

    check = result.checks["reconciliation"]
    assert check["status"] == "mismatch"
    assert check["mismatches"] == ["amount"]
    assert check["sums"]["amount"] == {"source": "30.01", "target": "30.00"}
    assert target("SELECT count(*) FROM public.ledger") == [(3,)]


def test_a_check_that_cannot_reach_the_source_is_skipped_and_the_run_still_publishes(
    source, make_spec, settings, scratch_database, target
):
    _ledger(source)
    connections = []

    def connect():
        if connections:  # the check's own session, after the extract's
            raise snowflake.connector.errors.OperationalError("the source went away")
        connections.append(settings.connect())
        return connections[0]

    result = run_sync(make_spec("LEDGER"), source=connect, target_dsn=scratch_database)

    assert result.checks["reconciliation"]["status"] == "skipped"
    assert "went away" in result.checks["reconciliation"]["reason"]
    assert target("SELECT count(*) FROM public.ledger") == [(3,)]


def test_a_backfill_is_checked_over_its_own_range(source, make_spec, sync, target):
    _ledger(source)
    spec = make_spec("LEDGER", watermark_column="UPDATED_AT")
    sync(spec)
    # Outside the backfilled range: a row changed behind fdm's back is not the backfill's business.
    target("UPDATE public.ledger SET amount = 0 WHERE id = 3 RETURNING id")

    check = sync(spec, backfill=BackfillRequest("2024-01-01 00:00:00", "2024-01-02 00:00:00")).checks[
        "reconciliation"
    ]

    assert (check["status"], check["scope"]) == ("equal", "range")
    assert check["rows"] == {"source": 2, "target": 2}
