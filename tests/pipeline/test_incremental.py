"""Incremental mode: `cursor >= watermark` (inclusive), upsert by primary key touching only changed rows, the
watermark written with the rows, and a full refresh on demand."""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from syncengine.pipeline.errors import ValidationFailed
from syncengine.pipeline.spec import SyncMode

from .conftest import staging_tables

T0 = dt.datetime(2024, 3, 1, 9, 0, 0)


def at(minutes: float) -> str:
    return (T0 + dt.timedelta(minutes=minutes)).isoformat(sep=" ")


def _prices(source, *, key: bool = True) -> None:
    source.sql(
        f"CREATE TABLE {source.table('PRICES')} (ID NUMBER(38,0) NOT NULL, PRICE NUMBER(18,6), "
        f"UPDATED_AT TIMESTAMP_NTZ NOT NULL{', PRIMARY KEY (ID)' if key else ''})"
    )


def _put(source, *rows: tuple[int, str, str]) -> None:
    for row in rows:
        source.sql(
            f"INSERT INTO {source.table('PRICES')} VALUES (?, CAST(? AS NUMBER(18,6)), CAST(? AS TIMESTAMP_NTZ))",
            row,
        )


def _update(source, key: int, price: str, updated_at: str) -> None:
    source.sql(
        f"UPDATE {source.table('PRICES')} SET PRICE = CAST(? AS NUMBER(18,6)), UPDATED_AT = CAST(? AS TIMESTAMP_NTZ) "
        "WHERE ID = ?",
        (price, updated_at, key),
    )


def _rows(target) -> list[tuple]:
    return target("SELECT id, price, updated_at FROM public.prices ORDER BY id")


def test_the_first_run_loads_everything_and_sets_the_watermark(source, make_spec, sync, target):
    _prices(source)
    _put(source, (1, "1.5", at(0)), (2, "2.5", at(5)), (3, "3.5", at(5)))

    result = sync(make_spec("PRICES", watermark_column="updated_at"))

    assert result.mode == "full"
    assert result.rows_inserted == 3
    assert result.watermark_before is None
    assert result.watermark_after == {"type": "timestamp_ntz", "value": "2024-03-01T09:05:00.000000"}
    assert target("SELECT table_name, watermark_column, watermark FROM _fdm.sync_state") == [
        ("prices", "UPDATED_AT", result.watermark_after)
    ]


def test_rows_at_the_boundary_and_late_rows_with_an_equal_cursor_are_not_lost(
    source, make_spec, sync, target
):
    _prices(source)
    _put(source, (1, "1.5", at(0)), (2, "2.5", at(5)))
    spec = make_spec("PRICES", watermark_column="updated_at")
    sync(spec)

    # Arrives after the run, carrying the watermark's own value.
    _put(source, (3, "3.5", at(5)), (4, "4.5", at(6)))
    result = sync(spec)

    assert result.mode == "incremental"
    assert result.extract.rows == 3  # ids 2 and 3 at the boundary, id 4 after it
    assert (result.rows_inserted, result.rows_updated) == (2, 0)
    assert result.checks["rows_unchanged"] == 1
    assert [row[0] for row in _rows(target)] == [1, 2, 3, 4]
    assert result.watermark_after["value"] == "2024-03-01T09:06:00.000000"


def test_updates_of_synced_rows_are_applied(source, make_spec, sync, target):
    _prices(source)
    _put(source, (1, "1.5", at(0)), (2, "2.5", at(1)), (3, "3.5", at(2)))
    spec = make_spec("PRICES", watermark_column="updated_at")
    sync(spec)

    _update(source, 1, "1.75", at(10))
    _put(source, (4, "4.5", at(11)))
    result = sync(spec)

    assert (result.rows_inserted, result.rows_updated, result.rows_deleted) == (1, 1, 0)
    assert _rows(target) == [
        (1, Decimal("1.750000"), T0 + dt.timedelta(minutes=10)),
        (2, Decimal("2.500000"), T0 + dt.timedelta(minutes=1)),
        (3, Decimal("3.500000"), T0 + dt.timedelta(minutes=2)),
        (4, Decimal("4.500000"), T0 + dt.timedelta(minutes=11)),
    ]
    assert staging_tables(target) == []


def test_a_second_run_without_source_changes_changes_nothing(source, make_spec, sync, target):
    _prices(source)
    _put(source, (1, "1.5", at(0)), (2, "2.5", at(3)), (3, "3.5", at(3)))
    spec = make_spec("PRICES", watermark_column="updated_at")
    sync(spec)
    before = target("SELECT xmin::text, id FROM public.prices ORDER BY id")

    second = sync(spec)
    third = sync(spec)

    for result in (second, third):
        assert (result.rows_inserted, result.rows_updated, result.rows_deleted) == (0, 0, 0)
        assert result.watermark_after == result.watermark_before
    assert target("SELECT xmin::text, id FROM public.prices ORDER BY id") == before  # no row rewritten


def test_rows_below_the_watermark_wait_for_a_full_refresh(source, make_spec, sync, target):
    _prices(source)
    _put(source, (1, "1.5", at(10)))
    spec = make_spec("PRICES", watermark_column="updated_at")
    sync(spec)
    _put(source, (2, "2.5", at(1)))  # late, with an older cursor value than the watermark

    assert sync(spec).rows_inserted == 0
    refreshed = sync(spec, full_refresh=True)

    assert refreshed.mode == "full"
    assert refreshed.rows_inserted == 2
    assert refreshed.watermark_after["value"] == "2024-03-01T09:10:00.000000"
    assert [row[0] for row in _rows(target)] == [1, 2]


def test_the_newest_version_of_a_repeated_key_wins(source, make_spec, sync, target):
    """Snowflake does not enforce primary keys; a repeated key keeps its row with the newest cursor value."""
    _prices(source, key=False)
    _put(source, (1, "1.0", at(0)))
    spec = make_spec("PRICES", watermark_column="updated_at", primary_key=("ID",))
    sync(spec)
    _put(source, (1, "1.1", at(2)), (1, "1.2", at(3)), (2, "2.0", at(2)))

    result = sync(spec)

    assert result.checks["duplicates_resolved"] == 2  # id 1 three times: the synced row and two updates
    assert (result.rows_inserted, result.rows_updated) == (1, 1)
    assert _rows(target)[0] == (1, Decimal("1.200000"), T0 + dt.timedelta(minutes=3))


def test_a_repeated_key_with_the_same_cursor_value_fails_the_run(source, make_spec, sync, target):
    _prices(source, key=False)
    _put(source, (1, "1.0", at(0)))
    spec = make_spec("PRICES", watermark_column="updated_at", primary_key=("ID",))
    sync(spec)
    _put(source, (2, "2.0", at(2)), (2, "2.1", at(2)))

    with pytest.raises(ValidationFailed, match="same UPDATED_AT|same updated_at"):
        sync(spec)
    assert [row[0] for row in _rows(target)] == [1]


def test_without_a_primary_key_the_slice_at_or_above_the_watermark_is_replaced(
    source, make_spec, sync, target
):
    _prices(source, key=False)
    _put(source, (1, "1.5", at(0)), (2, "2.5", at(5)))
    spec = make_spec("PRICES", watermark_column="updated_at")
    first = sync(spec)
    assert first.mode == "full"

    _put(source, (3, "3.5", at(5)), (4, "4.5", at(7)))
    result = sync(spec)

    assert result.mode == "incremental"
    assert (result.rows_deleted, result.rows_inserted) == (1, 3)  # row 2 replaced, rows 3 and 4 added
    assert [row[0] for row in _rows(target)] == [1, 2, 3, 4]
    again = sync(spec)
    assert (again.rows_deleted, again.rows_inserted) == (1, 1)  # only the boundary row is rewritten
    assert [row[0] for row in _rows(target)] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("column_type", "values", "expected"),
    [
        ("NUMBER(38,0)", ["100", "200", "200"], {"type": "number", "value": "200"}),
        ("NUMBER(10,2)", ["1.25", "7.50", "7.50"], {"type": "number", "value": "7.50"}),
        ("DATE", ["2024-01-01", "2024-02-01", "2024-02-01"], {"type": "date", "value": "2024-02-01"}),
        ("VARCHAR", ["2024-A", "2024-B", "2024-B"], {"type": "text", "value": "2024-B"}),
        (
            "TIMESTAMP_TZ",
            ["2024-01-01 00:00:00+00:00", "2024-01-01 10:00:00.5+00:00", "2024-01-01 10:00:00.5+00:00"],
            {"type": "timestamp_tz", "value": "2024-01-01T10:00:00.500000+00:00"},
        ),
    ],
)
def test_each_watermark_type_binds_back_exactly(source, make_spec, sync, column_type, values, expected):
    source.sql(
        f"CREATE TABLE {source.table('EVENTS')} (ID NUMBER(38,0) NOT NULL, MARK {column_type}, PRIMARY KEY (ID))"
    )
    insert = f"INSERT INTO {source.table('EVENTS')} VALUES (?, CAST(? AS {column_type}))"
    source.sql(insert, (1, values[0]))
    source.sql(insert, (2, values[1]))
    spec = make_spec("EVENTS", watermark_column="MARK")
    assert sync(spec).watermark_after == expected

    source.sql(insert, (3, values[2]))  # a late row equal to the watermark
    result = sync(spec)

    assert result.mode == "incremental"
    assert result.extract.rows == 2  # the boundary row already loaded, and the late one
    assert (result.rows_inserted, result.rows_updated) == (1, 0)
    assert result.watermark_before == result.watermark_after == expected


def test_a_table_configured_full_ignores_stored_watermarks(source, make_spec, sync):
    _prices(source)
    _put(source, (1, "1.5", at(0)))
    sync(make_spec("PRICES", watermark_column="updated_at"))

    result = sync(make_spec("PRICES", mode=SyncMode.FULL))

    assert result.mode == "full" and result.watermark_after is None


def test_an_empty_source_creates_an_empty_target_without_a_watermark(source, make_spec, sync, target):
    _prices(source)
    result = sync(make_spec("PRICES", watermark_column="updated_at"))

    assert (result.extract.rows, result.rows_inserted, result.watermark_after) == (0, 0, None)
    assert target("SELECT count(*) FROM public.prices") == [(0,)]


def test_a_run_that_extracts_nothing_keeps_the_watermark(source, make_spec, sync, target):
    _prices(source)
    _put(source, (1, "1.5", at(0)), (2, "2.5", at(5)))
    spec = make_spec("PRICES", watermark_column="updated_at")
    first = sync(spec)
    source.sql(f"DELETE FROM {source.table('PRICES')} WHERE ID = 2")

    result = sync(spec)

    assert (result.mode, result.extract.rows, result.rows_inserted, result.rows_deleted) == (
        "incremental",
        0,
        0,
        0,
    )
    assert result.watermark_after == first.watermark_after
    assert [row[0] for row in _rows(target)] == [
        1,
        2,
    ]  # incremental runs never delete what the source deleted
