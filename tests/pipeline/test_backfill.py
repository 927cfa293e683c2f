"""Backfill: a cursor range re-extracted (inclusive) and merged like an incremental run, without moving the
watermark back."""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants

from __future__ import annotations

import datetime as dt
import re

import pytest

from syncengine.pipeline.backfill import BackfillRequest
from syncengine.pipeline.errors import ConfigurationError
from syncengine.pipeline.spec import SyncMode

T0 = dt.datetime(2024, 3, 1, 9, 0, 0)


def at(minutes: float) -> str:
    return (T0 + dt.timedelta(minutes=minutes)).isoformat(sep=" ")


def _prices(source, *, key: bool = True) -> None:
    source.sql(
        f"CREATE TABLE {source.table('PRICES')} (ID NUMBER(38,0) NOT NULL, PRICE NUMBER(18,6), "
        f"UPDATED_AT TIMESTAMP_NTZ NOT NULL{', PRIMARY KEY (ID)' if key else ''})"
    )
    for key_value in range(1, 7):
        source.sql(
            f"INSERT INTO {source.table('PRICES')} VALUES (?, CAST(? AS NUMBER(18,6)), CAST(? AS TIMESTAMP_NTZ))",
            (key_value, f"{key_value}.5", at(key_value * 10)),
        )


def _correct_prices_in_place(source, *keys: int) -> None:
    """A correction in the source that leaves the cursor as it was: incremental runs cannot see it."""
    for key_value in keys:
        source.sql(f"UPDATE {source.table('PRICES')} SET PRICE = PRICE + 100 WHERE ID = ?", (key_value,))


def _prices_in_target(target) -> dict[int, str]:
    return {key: str(price) for key, price in target("SELECT id, price FROM public.prices ORDER BY id")}


def test_a_backfill_re_merges_changed_rows_in_its_range_and_keeps_the_watermark(
    source, make_spec, sync, target
):
    _prices(source)
    spec = make_spec("PRICES", watermark_column="updated_at")
    first = sync(spec)
    _correct_prices_in_place(source, 2, 3, 5)

    result = sync(spec, backfill=BackfillRequest(at(20), at(30)))

    assert result.mode == "incremental"
    assert result.extract.rows == 2  # ids 2 and 3: both ends are inclusive
    assert result.rows_updated == 2
    assert result.checks["backfill"] == {"from": at(20), "to": at(30), "type": "timestamp_ntz"}
    assert _prices_in_target(target) == {
        1: "1.500000",
        2: "102.500000",
        3: "103.500000",
        4: "4.500000",
        5: "5.500000",
        6: "6.500000",
    }
    assert result.watermark_after == first.watermark_after
    assert target("SELECT watermark FROM _fdm.sync_state") == [(first.watermark_after,)]


def test_a_backfill_without_an_end_reads_to_the_newest_row(source, make_spec, sync, target):
    _prices(source)
    spec = make_spec("PRICES", watermark_column="updated_at")
    sync(spec)
    _correct_prices_in_place(source, 5, 6)

    result = sync(spec, backfill=BackfillRequest("2024-03-01T09:50:00"))

    assert result.extract.rows == 2
    assert _prices_in_target(target)[5] == "105.500000"


def test_a_backfill_replaces_its_range_in_a_table_without_a_key(source, make_spec, sync, target):
    _prices(source, key=False)
    spec = make_spec("PRICES", watermark_column="updated_at")
    sync(spec)
    _correct_prices_in_place(source, 2)

    result = sync(spec, backfill=BackfillRequest(at(20), at(20)))

    assert (result.rows_deleted, result.rows_inserted) == (1, 1)
    assert target("SELECT count(*) FROM public.prices") == [(6,)]
    assert _prices_in_target(target)[2] == "102.500000"


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (BackfillRequest("yesterday"), "from 'yesterday' is not a timestamp"),
        (BackfillRequest(at(10), "soon"), "to 'soon' is not a timestamp"),
        (BackfillRequest(at(30), at(10)), "is after to"),
        (BackfillRequest("2024-03-01T09:00:00+02:00"), "from '2024-03-01T09:00:00+02:00' is not a timestamp"),
    ],
)
def test_a_backfill_with_bad_values_changes_nothing(source, make_spec, sync, target, request_, message):
    _prices(source)
    spec = make_spec("PRICES", watermark_column="updated_at")
    sync(spec)
    state = target("SELECT watermark, run_id FROM _fdm.sync_state")

    with pytest.raises(ConfigurationError, match=re.escape(message)):
        sync(spec, backfill=request_, run_id="bad")

    assert target("SELECT watermark, run_id FROM _fdm.sync_state") == state


def test_a_backfill_needs_an_incremental_table_already_synced(source, make_spec, sync):
    _prices(source)
    with pytest.raises(ConfigurationError, match="run a sync first"):
        sync(make_spec("PRICES", watermark_column="updated_at"), backfill=BackfillRequest(at(0)))
    with pytest.raises(ConfigurationError, match="incremental table"):
        sync(make_spec("PRICES", mode=SyncMode.FULL), backfill=BackfillRequest(at(0)))


def test_number_cursors_are_read_exactly(source, make_spec, sync, target):
    source.sql(
        f"CREATE TABLE {source.table('LEDGER')} (ID NUMBER(38,0) NOT NULL, AMOUNT NUMBER(12,2), SEQ NUMBER(20,0), PRIMARY KEY (ID))"
    )
    for key_value in range(1, 5):
        source.sql(
            f"INSERT INTO {source.table('LEDGER')} VALUES (?, ?, ?)", (key_value, key_value, key_value * 100)
        )
    spec = make_spec("LEDGER", watermark_column="seq")
    sync(spec)
    source.sql(f"UPDATE {source.table('LEDGER')} SET AMOUNT = 99 WHERE ID IN (2, 3)")

    result = sync(spec, backfill=BackfillRequest("200", "299"))

    assert result.rows_updated == 1
    assert target("SELECT id FROM public.ledger WHERE amount = 99") == [(2,)]
