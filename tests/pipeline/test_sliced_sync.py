"""Full loads read in key-range slices over several Snowflake sessions: the same target as one query, every
slice in the evidence, duplicates caught across slices, and a failing slice leaving nothing behind."""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants

from __future__ import annotations

import dataclasses
import socket
import threading
from decimal import Decimal

import pytest
import snowflake.connector

from syncengine.pipeline import runner
from syncengine.pipeline.errors import TransientError, TypeOverflowError, ValidationFailed
from syncengine.pipeline.slices import SliceLimits, SlicePlan, split_range
from syncengine.pipeline.spec import DriftPolicy
from syncengine.pipeline.typemap import SourceColumn
from syncengine.pipeline.watermark import Watermark
from tests.pipeline.conftest import staging_tables
from tests.pipeline.test_protection import KEYRING, _protected, _read, _transactions

SLICED = SliceLimits(connections=3, min_rows=2, max_rows=5)  # 40 rows: 8 slices, 3 read at once
ONE = SliceLimits(connections=1)


def _ledger(source, rows: range, *, amount: str = "{i}.50") -> None:
    source.sql(
        f"CREATE OR REPLACE TABLE {source.table('LEDGER')} (ID NUMBER(38,0) NOT NULL, AMOUNT NUMBER(18,2), "
        "NOTE VARCHAR, PRIMARY KEY (ID))"
    )
    values = ", ".join(f"({i}, {amount.format(i=i)}, 'note {i}')" for i in rows)
    source.sql(f"INSERT INTO {source.table('LEDGER')} VALUES {values}")


def test_a_sliced_load_stores_the_same_rows_as_one_query(source, make_spec, sync, target):
    _ledger(source, range(-7, 33))
    sliced = sync(make_spec("LEDGER", target_table="ledger_sliced"), slicing=SLICED)
    whole = sync(make_spec("LEDGER", name="ledger_whole", target_table="ledger_whole"), slicing=ONE)

    assert sliced.checks["extract_slices"]["slices"] == 8
    assert whole.checks["extract_slices"]["slices"] == 1
    assert (
        (sliced.extract.rows, sliced.rows_inserted) == (whole.extract.rows, whole.rows_inserted) == (40, 40)
    )
    rows = "SELECT id, amount, note FROM public.{} ORDER BY id"
    assert target(rows.format("ledger_sliced")) == target(rows.format("ledger_whole"))
    assert sliced.checks["primary_key_unique"] and sliced.checks["row_counts_match"]
    assert staging_tables(target) == []


def test_the_evidence_names_every_slice_query(source, make_spec, sync):
    _ledger(source, range(40))
    result = sync(make_spec("LEDGER"), slicing=SLICED)

    extracts = [query for query in result.evidence.queries if query["purpose"] == "extract"]
    assert len(extracts) == 8
    assert len({query["query_id"] for query in extracts}) == 8
    assert [query["slice"]["slice"] for query in extracts] == list(range(1, 9))
    assert all("WHERE" in query["sql"] and query["params"] for query in extracts)
    assert [query["purpose"] for query in result.evidence.queries[:2]] == ["describe source", "plan slices"]


def test_protected_columns_are_stored_the_same_when_sliced(source, make_spec, sync, scratch_database):
    _transactions(source, rows=40)
    sync(_protected(make_spec, target_table="transactions"), keyring=KEYRING, slicing=ONE)
    sliced = _protected(make_spec, name="transactions_sliced", target_table="transactions_sliced")
    result = sync(sliced, keyring=KEYRING, slicing=SLICED)

    assert result.checks["extract_slices"]["slices"] == 8
    whole_rows = _read(scratch_database, limit=100).rows
    sliced_rows = _read(scratch_database, table="transactions_sliced", limit=100).rows
    assert len(whole_rows) == 40
    assert sliced_rows == whole_rows


def test_a_key_read_by_two_slices_fails_the_run(source, make_spec, sync, target, monkeypatch):
    """Slices never overlap; were a row read twice (its key moved between ranges during the read), the
    duplicate-key check, which sees every slice's batches, fails the run."""
    _ledger(source, range(40))
    sync(make_spec("LEDGER"), slicing=ONE)
    key = SourceColumn("ID", "NUMBER", precision=38, scale=0)
    first, second = split_range(key, 0, 39, 2)
    overlapping = (
        first,
        dataclasses.replace(second, low=Watermark("number", Decimal(5))),
    )  # 5..19 read twice
    monkeypatch.setattr(runner, "plan_slices", lambda *args, **kwargs: SlicePlan(ranges=overlapping))

    with pytest.raises(ValidationFailed, match="occur more than once"):
        sync(make_spec("LEDGER", batch_size=4), slicing=SLICED)
    assert target("SELECT count(*) FROM public.ledger") == [(40,)]
    assert staging_tables(target) == []


def test_a_slice_whose_session_fails_fails_the_run_and_leaves_nothing(
    source, make_spec, scratch_database, snowflake_server, target
):
    """The second session the run opens cannot log in (nothing listens where it connects): the connector's
    error is classified, and the other slices stop."""
    _ledger(source, range(40))
    spec = make_spec("LEDGER")
    runner.run_sync(spec, source=emulator_factory(snowflake_server), target_dsn=scratch_database, slicing=ONE)
    _ledger(source, range(100, 140))
    opened: list[int] = []
    lock = threading.Lock()

    def factory():
        with lock:
            opened.append(len(opened))
            second = len(opened) == 2
        if second:
            return snowflake.connector.connect(
                **{**snowflake_server, "port": _closed_port(), "login_timeout": 5}
            )
        return snowflake.connector.connect(**snowflake_server)

    with pytest.raises(TransientError) as raised:
        runner.run_sync(spec, source=factory, target_dsn=scratch_database, slicing=SLICED)
    assert raised.value.table == "ledger"
    assert len(opened) >= 2
    assert target("SELECT min(id), max(id), count(*) FROM public.ledger") == [(0, 39, 40)]
    assert staging_tables(target) == []


def test_a_value_failing_in_one_slice_stops_the_others(source, make_spec, sync, target):
    _ledger(source, range(40))
    sync(make_spec("LEDGER"), slicing=ONE)
    target("ALTER TABLE public.ledger ALTER COLUMN amount TYPE numeric(6,2)")
    _ledger(source, range(40), amount="CASE WHEN {i} = 31 THEN 123456789.00 ELSE {i}.25 END")

    with pytest.raises(TypeOverflowError):
        sync(make_spec("LEDGER", batch_size=2, drift_policy=DriftPolicy.IGNORE), slicing=SLICED)
    assert target("SELECT count(*), sum(amount) FROM public.ledger") == [(40, Decimal("800.00"))]
    assert staging_tables(target) == []


def test_an_incremental_run_reads_in_one_query(source, make_spec, sync):
    source.sql(
        f"CREATE TABLE {source.table('EVENTS')} (ID NUMBER(38,0) NOT NULL, UPDATED_AT TIMESTAMP_NTZ, "
        "PRIMARY KEY (ID))"
    )
    values = ", ".join(f"({i}, '2024-01-01 00:00:{i:02d}')" for i in range(40))
    source.sql(f"INSERT INTO {source.table('EVENTS')} VALUES {values}")
    spec = make_spec("EVENTS", watermark_column="UPDATED_AT")
    first = sync(spec, slicing=SLICED)
    second = sync(spec, slicing=SLICED)

    assert (first.mode, first.checks["extract_slices"]["slices"]) == ("full", 8)
    assert (second.mode, second.checks["extract_slices"]["slices"]) == ("incremental", 1)
    assert second.checks["extract_slices"]["reason"] == "incremental run"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def emulator_factory(server: dict):
    return lambda: snowflake.connector.connect(**server)
