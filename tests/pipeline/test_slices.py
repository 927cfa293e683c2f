"""Key-range slices: planned against the emulator, every row read by exactly one slice."""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from decimal import Decimal

import pytest

from syncengine.pipeline.extract import SourceQuery
from syncengine.pipeline.slices import (
    WHOLE_TABLE,
    SliceLimits,
    SliceRange,
    plan_slices,
    slice_count,
    sliced_query,
    split_range,
)
from syncengine.pipeline.spec import SourceRef
from syncengine.pipeline.typemap import SourceColumn

NUMBER_KEY = SourceColumn("K", "NUMBER", precision=38, scale=0)
SMALL = SliceLimits(connections=3, min_rows=2, max_rows=4, max_slices=16)


def _keys_by_slice(source, table: str, ranges, *, base_filter: str = "") -> list[list]:
    base = SourceQuery(f"SELECT K FROM {source.table(table)}{base_filter}", filtered=bool(base_filter))
    found = []
    for slice_range in ranges:
        query = sliced_query(base, slice_range)
        found.append([row[0] for row in source.sql(query.sql, query.params or None)])
    return found


def _assert_exactly_once(source, table: str, ranges, *, base_filter: str = "") -> None:
    everything = Counter(row[0] for row in source.sql(f"SELECT K FROM {source.table(table)}{base_filter}"))
    read = Counter(
        key for keys in _keys_by_slice(source, table, ranges, base_filter=base_filter) for key in keys
    )
    assert read == everything


def _numbers(source, table: str, keys: list, *, type_name: str = "NUMBER(38,0)") -> None:
    source.sql(f"CREATE TABLE {source.table(table)} (K {type_name}, V TEXT)")
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        # Literal numbers: the emulator refuses Decimal binds in an INSERT.
        values = ", ".join(f"({key}, 'v')" for key in chunk)
        source.sql(f"INSERT INTO {source.table(table)} VALUES {values}")


@pytest.mark.parametrize(
    "keys",
    [
        pytest.param(list(range(1, 101)), id="dense"),
        pytest.param([*range(1, 90), 10**12, 10**12 + 1], id="skewed"),
        pytest.param([*range(-50, -40), *range(1000, 1010), 10**6], id="gaps"),
        pytest.param(list(range(-200, -100)), id="negative"),
        pytest.param([7], id="single row"),
        pytest.param([3, 4], id="span narrower than the count"),
        pytest.param([-(2**63) + 1, 0, 2**63 - 1], id="64-bit extremes"),
    ],
)
def test_it_reads_every_number_key_exactly_once(source, keys) -> None:
    _numbers(source, "T", keys)
    for count in range(1, 8):
        low, high = min(keys), max(keys)
        _assert_exactly_once(source, "T", split_range(NUMBER_KEY, low, high, count))


def test_it_splits_a_scaled_number_exactly(source) -> None:
    column = SourceColumn("K", "NUMBER", precision=10, scale=2)
    keys = [Decimal("-1.05"), Decimal("0.01"), Decimal("0.02"), Decimal("3.33"), Decimal("99.99")]
    _numbers(source, "T", keys, type_name="NUMBER(10,2)")
    ranges = split_range(column, keys[0], keys[-1], 7)
    assert len(ranges) == 7
    assert all(r.high is None or r.high.value == r.high.value.quantize(Decimal("0.01")) for r in ranges)
    _assert_exactly_once(source, "T", ranges)


def test_it_reads_rows_added_beyond_the_planned_range(source) -> None:
    _numbers(source, "T", list(range(10, 20)))
    ranges = split_range(NUMBER_KEY, 10, 19, 3)
    source.sql(f"INSERT INTO {source.table('T')} VALUES (-5, 'below'), (1000, 'above'), (NULL, 'no key')")
    keys = _keys_by_slice(source, "T", ranges)
    assert -5 in keys[0] and None in keys[0] and 1000 in keys[-1]
    _assert_exactly_once(source, "T", ranges)


def test_it_narrows_a_query_that_already_filters(source) -> None:
    _numbers(source, "T", list(range(1, 41)))
    ranges = split_range(NUMBER_KEY, 1, 40, 4)
    _assert_exactly_once(source, "T", ranges, base_filter=" WHERE K >= 15")


def test_it_splits_dates_and_timestamps(source) -> None:
    source.sql(f"CREATE TABLE {source.table('D')} (K DATE)")
    source.sql(f"CREATE TABLE {source.table('S')} (K TIMESTAMP_NTZ)")
    days = [dt.date(2020, 1, 1) + dt.timedelta(days=n * n) for n in range(30)]
    stamps = [dt.datetime(2021, 3, 4, 5, 6, 7) + dt.timedelta(microseconds=n * 997_001) for n in range(30)]
    for table, values in (("D", days), ("S", stamps)):
        for value in values:
            source.sql(f"INSERT INTO {source.table(table)} VALUES (?)", (value,))
    for table, values, type_name in (("D", days, "DATE"), ("S", stamps, "TIMESTAMP_NTZ")):
        column = SourceColumn("K", type_name)
        for count in (2, 3, 7):
            ranges = split_range(column, min(values), max(values), count)
            assert len(ranges) == count
            _assert_exactly_once(source, table, ranges)


def test_it_plans_slices_from_the_key_range_and_row_count(source, source_connection) -> None:
    _numbers(source, "T", list(range(1, 11)))
    plan = plan_slices(
        source_connection, SourceRef(source.database, "PUBLIC", "T"), NUMBER_KEY, SMALL, table="t"
    )
    assert plan.rows == 10
    assert len(plan.ranges) == 3  # ceil(10 / 4 rows a slice)
    assert plan.query_id
    assert plan.describe()["slices"] == 3
    _assert_exactly_once(source, "T", plan.ranges)


def test_it_reads_an_empty_or_unsplittable_table_whole(source, source_connection) -> None:
    _numbers(source, "T", [])
    ref = SourceRef(source.database, "PUBLIC", "T")
    assert plan_slices(source_connection, ref, NUMBER_KEY, SMALL, table="t").ranges == (WHOLE_TABLE,)
    text_key = SourceColumn("V", "TEXT")
    assert plan_slices(source_connection, ref, text_key, SMALL, table="t").ranges == (WHOLE_TABLE,)
    assert plan_slices(source_connection, ref, None, SMALL, table="t").ranges == (WHOLE_TABLE,)
    one = SliceLimits(connections=1, min_rows=1)
    assert plan_slices(source_connection, ref, NUMBER_KEY, one, table="t").ranges == (WHOLE_TABLE,)


def test_the_slice_count_follows_the_table_size() -> None:
    limits = SliceLimits(connections=2)
    assert slice_count(0, limits) == 1
    assert slice_count(399_999, limits) == 1
    assert slice_count(400_000, limits) == 4  # 100,000 rows each at most
    assert slice_count(1_000_000, limits) == 10
    assert slice_count(5_000_000, limits) == 50
    assert slice_count(10**10, limits) == 64
    assert slice_count(10**10, SliceLimits(connections=1)) == 1
    # With larger slices allowed, eight sessions still read 200,000 rows each at least.
    assert slice_count(1_000_000, SliceLimits(connections=8, max_rows=250_000)) == 5


def test_it_cuts_38_digit_numbers_exactly() -> None:
    # The emulator stores NUMBER(38,0) in 64 bits; Snowflake holds 38 digits, past Decimal's 28-digit context.
    ranges = split_range(NUMBER_KEY, -(10**37), 10**37 + 3, 3)
    cuts = [r.high.value for r in ranges if r.high is not None]
    assert cuts == [
        Decimal(-(10**37) + (2 * 10**37 + 3) // 3),
        Decimal(-(10**37) + 2 * (2 * 10**37 + 3) // 3),
    ]
    assert "E" not in ranges[1].predicate()[1][0][1]  # bound as plain digits


def test_the_whole_table_needs_no_predicate() -> None:
    query = SourceQuery("SELECT 1")
    assert sliced_query(query, WHOLE_TABLE) is query
    assert split_range(NUMBER_KEY, None, None, 4) == (WHOLE_TABLE,)
    assert split_range(NUMBER_KEY, 5, 5, 4) == (WHOLE_TABLE,)


def test_a_range_survives_a_round_trip_through_json() -> None:
    column = SourceColumn("K", "NUMBER", precision=10, scale=2)
    stamps = SourceColumn("S", "TIMESTAMP_NTZ")
    ranges = (
        *split_range(column, Decimal("-1.05"), Decimal("99.99"), 3),
        *split_range(stamps, dt.datetime(2021, 1, 1), dt.datetime(2021, 1, 2, 3, 4, 5, 6), 3),
        WHOLE_TABLE,
    )
    for slice_range in ranges:
        assert SliceRange.from_json(json.loads(json.dumps(slice_range.to_json()))) == slice_range
