"""Every Snowflake type arrives in PostgreSQL with the exact value, compared value by value."""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

UTC = dt.UTC
LONG_TEXT = "€" + "ab" * 49_999 + "ß"  # 100,000 characters, multi-byte at both ends

COLUMNS = """
    ID NUMBER(38,0) NOT NULL, BIG NUMBER(38,0), AMOUNT NUMBER(18,2), RATE NUMBER(10,4), RATIO FLOAT,
    FLAG BOOLEAN, DAY DATE, AT_TIME TIME, NTZ TIMESTAMP_NTZ, TZ TIMESTAMP_TZ, LTZ TIMESTAMP_LTZ,
    DOC VARIANT, OBJ OBJECT, ARR ARRAY, BLOB BINARY, NOTE VARCHAR, SHORT VARCHAR(10), PRIMARY KEY (ID)
"""


def _create(source) -> None:
    source.sql(f"CREATE TABLE {source.table('ALL_TYPES')} ({COLUMNS})")
    insert = (
        f"INSERT INTO {source.table('ALL_TYPES')} "
        "SELECT ?, ?, CAST(? AS NUMBER(18,2)), CAST(? AS NUMBER(10,4)), CAST(? AS FLOAT), ?, "
        "CAST(? AS DATE), CAST(? AS TIME), CAST(? AS TIMESTAMP_NTZ), CAST(? AS TIMESTAMP_TZ), "
        "CAST(? AS TIMESTAMP_LTZ), PARSE_JSON(?), PARSE_JSON(?), PARSE_JSON(?), TO_BINARY(?, 'HEX'), ?, ?"
    )
    rows = [
        (
            1,
            9223372036854775807,
            "9999999999999999.99",
            "123456.7891",
            "1.5",
            True,
            "2024-02-29",
            "23:59:59.999999",
            "2024-01-02 03:04:05.123456",
            "2024-01-02 03:04:05.123456+02:00",
            "2024-06-30 23:59:59.999999+00:00",
            '{"a": [1, 2.50, "x"], "b": {"c": null}, "u": "Zürich ✓"}',
            '{"k": "v"}',
            '[1, "two", {"three": 3}]',
            "00FF10",
            'héllo, "world"\n\ttab\\',
            "0123456789",
        ),
        (
            2,
            -9223372036854775808,
            "-0.01",
            "-0.0001",
            "-1e308",
            False,
            "0001-01-01",
            "00:00:00",
            "1900-01-01 00:00:00.000001",
            "1969-12-31 23:59:59.999999-05:00",
            "2000-01-01 00:00:00+00:00",
            "[]",
            "{}",
            "[]",
            "",
            "",
            "",
        ),
        (
            3,
            0,
            "0.00",
            "0.0000",
            "5e-324",
            None,
            "9999-12-31",
            "12:00:00.5",
            "9999-12-31 23:59:59.999999",
            "2262-04-12 00:00:00+00:00",
            "1970-01-01 00:00:00+00:00",
            '"just a string"',
            '{"nested": {"deep": [true, false]}}',
            "[null]",
            None,
            LONG_TEXT,
            None,
        ),
    ]
    for row in rows:
        source.sql(insert, row)
    # NULL in every column that may hold one. Timestamps are left set: the emulator returns a NULL timestamp
    # as 1970-01-01 (its Arrow conversion drops the null mask), which real Snowflake does not.
    source.sql(
        f"INSERT INTO {source.table('ALL_TYPES')} (ID, NTZ, TZ, LTZ) VALUES (4, '2024-01-01 00:00:00', "
        "'2024-01-01 00:00:00+00:00'::TIMESTAMP_TZ, '2024-01-01 00:00:00+00:00'::TIMESTAMP_TZ)"
    )
    source.sql(
        f"INSERT INTO {source.table('ALL_TYPES')} (ID, RATIO, NTZ, TZ, LTZ) VALUES "
        "(5, 'inf'::FLOAT, '2024-01-01', '2024-01-01'::TIMESTAMP_TZ, '2024-01-01'::TIMESTAMP_TZ), "
        "(6, '-inf'::FLOAT, '2024-01-01', '2024-01-01'::TIMESTAMP_TZ, '2024-01-01'::TIMESTAMP_TZ), "
        "(7, 'NaN'::FLOAT, '2024-01-01', '2024-01-01'::TIMESTAMP_TZ, '2024-01-01'::TIMESTAMP_TZ)"
    )


def test_it_creates_the_target_with_exact_types(source, make_spec, sync, target):
    _create(source)
    result = sync(make_spec("ALL_TYPES"))

    assert result.target_created
    types = dict(
        target(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'public.all_types'::regclass AND attnum > 0 ORDER BY attnum"
        )
    )
    assert types == {
        "id": "numeric(38,0)",
        "big": "numeric(38,0)",
        "amount": "numeric(18,2)",
        "rate": "numeric(10,4)",
        "ratio": "double precision",
        "flag": "boolean",
        "day": "date",
        "at_time": "time without time zone",
        "ntz": "timestamp without time zone",
        "tz": "timestamp with time zone",
        "ltz": "timestamp with time zone",
        "doc": "jsonb",
        "obj": "jsonb",
        "arr": "jsonb",
        "blob": "bytea",
        "note": "text",
        "short": "text",
    }
    assert target(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'public.all_types'::regclass AND i.indisprimary"
    ) == [("id",)]


def test_every_value_round_trips_exactly(source, make_spec, sync, target):
    _create(source)
    result = sync(make_spec("ALL_TYPES", batch_size=2))
    assert result.extract.rows == result.load.rows == result.rows_inserted == 7

    rows = {row[0]: row[1:] for row in target("SELECT * FROM public.all_types ORDER BY id")}
    assert rows[Decimal(1)] == (
        Decimal("9223372036854775807"),
        Decimal("9999999999999999.99"),
        Decimal("123456.7891"),
        1.5,
        True,
        dt.date(2024, 2, 29),
        dt.time(23, 59, 59, 999999),
        dt.datetime(2024, 1, 2, 3, 4, 5, 123456),
        dt.datetime(2024, 1, 2, 1, 4, 5, 123456, tzinfo=UTC),
        dt.datetime(2024, 6, 30, 23, 59, 59, 999999, tzinfo=UTC),
        {"a": [1, 2.5, "x"], "b": {"c": None}, "u": "Zürich ✓"},
        {"k": "v"},
        [1, "two", {"three": 3}],
        b"\x00\xff\x10",
        'héllo, "world"\n\ttab\\',
        "0123456789",
    )
    assert rows[Decimal(2)] == (
        Decimal("-9223372036854775808"),
        Decimal("-0.01"),
        Decimal("-0.0001"),
        -1e308,
        False,
        dt.date(1, 1, 1),
        dt.time(0, 0),
        dt.datetime(1900, 1, 1, 0, 0, 0, 1),
        dt.datetime(1970, 1, 1, 4, 59, 59, 999999, tzinfo=UTC),
        dt.datetime(2000, 1, 1, tzinfo=UTC),
        [],
        {},
        [],
        b"",
        "",
        "",
    )
    third = rows[Decimal(3)]
    assert third[:9] == (
        Decimal(0),
        Decimal("0.00"),
        Decimal("0.0000"),
        5e-324,
        None,
        dt.date(9999, 12, 31),
        dt.time(12, 0, 0, 500000),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        dt.datetime(2262, 4, 12, tzinfo=UTC),
    )
    assert third[10:] == ("just a string", {"nested": {"deep": [True, False]}}, [None], None, LONG_TEXT, None)
    assert len(third[14]) == 100_000

    nulls = rows[Decimal(4)]
    assert nulls[:7] == (None,) * 7
    assert nulls[10:] == (None,) * 6

    ratios = dict(target("SELECT id, ratio FROM public.all_types WHERE id IN (5, 6, 7)"))
    assert ratios[Decimal(5)] == math.inf
    assert ratios[Decimal(6)] == -math.inf
    assert math.isnan(ratios[Decimal(7)])


def test_empty_strings_stay_distinct_from_null(source, make_spec, sync, target):
    _create(source)
    sync(make_spec("ALL_TYPES"))
    assert target(
        "SELECT id, note IS NULL, note = '' FROM public.all_types WHERE id IN (2, 4) ORDER BY id"
    ) == [
        (Decimal(2), False, True),
        (Decimal(4), True, None),
    ]
