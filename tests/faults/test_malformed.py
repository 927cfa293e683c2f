"""Malformed data from the source, with the bad row in a later batch after earlier batches were COPYed into
staging. Must hold: a terminal failure whose message names the table, the column and the cause; the target
and its watermark as they were; no staging table and no held lock left behind.

What tests/pipeline already covers (and is not repeated here): an overflow in a full run's later batch
(`test_full.py`), text too long for its column, a repeated key with the same cursor value (`test_incremental`).

The emulator cannot produce invalid UTF-8 (its strings are Unicode; a lone surrogate makes it fail with HTTP
500), so the text case is the one PostgreSQL refuses that Snowflake holds: a NUL character. A VARIANT that is
not JSON is a NaN (Snowflake's VARIANT holds one and prints it as `NaN`; jsonb refuses it), and a string
holding `\\u0000` (jsonb refuses that escape).
"""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants
# ruff: noqa: F811 - the imported fixtures are parameters of the tests that use them

from __future__ import annotations

from decimal import Decimal

import pytest

from syncengine.pipeline.errors import TerminalError
from syncengine.pipeline.schema.drift import DriftPolicy

from .pipeline_fixtures import (  # noqa: F401 - fixtures
    leftovers,
    make_spec,
    settings,
    source,
    source_connection,
    sync,
    target,
)

pytestmark = pytest.mark.faults

GOOD_ROWS = 7  # with batch_size 3 the bad row is in the third batch, after two were COPYed


def _orders(source, *, key: bool = True) -> str:
    table = source.table("ORDERS")
    primary = ", PRIMARY KEY (ID)" if key else ""
    source.sql(
        f"CREATE TABLE {table} (ID NUMBER(38,0), AMOUNT NUMBER(18,2), NOTE TEXT, DOC VARIANT, "
        f"UPDATED_AT NUMBER(38,0){primary})"
    )
    source.sql(
        f"INSERT INTO {table} SELECT seq4() + 1, (seq4() + 1) * 1.5, 'ok', PARSE_JSON('{{\"n\": 1}}'), 1 "
        f"FROM TABLE(GENERATOR(ROWCOUNT => {GOOD_ROWS}))"
    )
    return table


def _snapshot(target) -> list[tuple]:
    return target("SELECT id, amount, note, doc::text FROM public.orders ORDER BY id")


def _state(target) -> list[tuple]:
    return target("SELECT watermark::text, run_id FROM _fdm.sync_state WHERE table_name = 'orders'")


# Each case: the SQL that adds the bad row (after the good ones), the column the message must name, and words
# of the cause.
CASES = {
    "number-overflow": (
        "INSERT INTO {t} VALUES (100, 123456789.00, 'big', NULL, 2)",
        "amount",
        "does not fit",
    ),
    "null-key": ("INSERT INTO {t} VALUES (NULL, 1.00, 'no key', NULL, 2)", "id", "NULL primary key"),
    "duplicate-key": (
        "INSERT INTO {t} VALUES (3, 1.00, 'again', NULL, 2), (3, 2.00, 'and again', NULL, 2)",
        "id",
        "more than once",
    ),
    "nul-in-text": ("INSERT INTO {t} SELECT 100, 1.00, 'a' || chr(0) || 'b', NULL, 2", "note", "0x00"),
    "variant-nan": ("INSERT INTO {t} SELECT 100, 1.00, 'nan', TO_VARIANT('NaN'::FLOAT), 2", "doc", "json"),
    "variant-nul-escape": (
        "INSERT INTO {t} SELECT 100, 1.00, 'nul', PARSE_JSON('\"\\\\u0000\"'), 2",
        "doc",
        "u0000",
    ),
}


@pytest.mark.parametrize("mode", ["full", "incremental"])
@pytest.mark.parametrize("case", list(CASES))
def test_malformed_source_rows_fail_the_run_terminal_and_leave_the_target_as_it_was(
    case, mode, source, make_spec, sync, target, scratch_database
):
    # The emulator enforces a declared key (Snowflake does not): the key cases declare none, the spec names it.
    table = _orders(source, key=case not in ("null-key", "duplicate-key"))
    options = {"batch_size": 3, "primary_key": ("ID",), "drift_policy": DriftPolicy.IGNORE}
    if mode == "incremental":
        options["watermark_column"] = "UPDATED_AT"
    spec = make_spec("ORDERS", **options)
    sync(spec)
    # numeric(18,2) narrowed by an operator, so the overflow is the target's (the emulator enforces NUMBER(p,s)).
    target("ALTER TABLE public.orders ALTER COLUMN amount TYPE numeric(8,2)")
    before, state_before = _snapshot(target), _state(target)
    insert, column, cause = CASES[case]
    source.sql(f"UPDATE {table} SET NOTE = 'changed', UPDATED_AT = 2")  # a publish would show
    source.sql(insert.format(t=table))

    with pytest.raises(TerminalError) as raised:
        sync(spec)

    message = str(raised.value)
    assert message.startswith(f"orders.{column}"), message
    assert cause.lower() in message.lower(), message
    assert _snapshot(target) == before
    assert _state(target) == state_before
    assert leftovers(target, scratch_database, "orders") == {"staging": [], "lock_free": True}
    print(f"\n{case}/{mode}: {type(raised.value).__name__}: {message}")


def test_the_rows_before_a_malformed_batch_were_staged_when_it_failed(source, make_spec, sync, target):
    """The bad row really is mid-stream: two batches reached staging (progress says so) before it failed."""
    table = _orders(source)
    spec = make_spec("ORDERS", batch_size=3, primary_key=("ID",))
    sync(spec)
    source.sql(f"INSERT INTO {table} SELECT 100, 1.00, 'nan', TO_VARIANT('NaN'::FLOAT), 2")
    seen: list[int] = []

    with pytest.raises(TerminalError):
        sync(spec, on_progress=lambda stage, rows: seen.append(rows) if stage == "extract" else None)

    assert max(seen) >= 6, seen
    assert _snapshot(target)[0] == (Decimal(1), Decimal("1.50"), "ok", '{"n": 1}')
