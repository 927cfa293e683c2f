"""Realistic finance sample data for a Snowflake account or the emulator (no Django needed).

Rows are generated inside the database by `INSERT ... SELECT` over `TABLE(GENERATOR(ROWCOUNT => n))`, never
sent row by row: a million transactions take a few seconds. Values are derived from the row number with
integer arithmetic, so the same `seed` gives the same data on Snowflake and on the emulator.
"""

from __future__ import annotations

from typing import Any

from syncengine.pipeline.identifiers import quote_snowflake, snowflake_name

TRANSACTIONS_COLUMNS = (
    "TXN_ID NUMBER(38,0) NOT NULL",
    "ACCOUNT_ID NUMBER(38,0) NOT NULL",
    "AMOUNT NUMBER(18,2) NOT NULL",
    "CURRENCY VARCHAR(3) NOT NULL",
    "DESCRIPTION VARCHAR",
    "CATEGORY VARCHAR",
    "BOOKED_AT TIMESTAMP_NTZ NOT NULL",
    "VALUE_DATE DATE",
    "IS_REVERSAL BOOLEAN NOT NULL",
    "METADATA VARIANT",
    "UPDATED_AT TIMESTAMP_NTZ NOT NULL",
    "PRIMARY KEY (TXN_ID)",
)
ACCOUNT_COUNT = 5000
FIRST_TIMESTAMP = "2024-01-01 00:00:00"


def _name(database: str, schema: str, table: str) -> str:
    return ".".join(quote_snowflake(snowflake_name(part)) for part in (database, schema, table))


def _execute(conn: Any, sql: str) -> Any:
    cursor = conn.cursor()
    try:
        cursor.execute(sql)
        return cursor.fetchall()
    finally:
        cursor.close()


def ensure_schema(conn: Any, *, database: str, schema: str) -> None:
    _execute(conn, f"CREATE DATABASE IF NOT EXISTS {quote_snowflake(snowflake_name(database))}")
    _execute(
        conn,
        f"CREATE SCHEMA IF NOT EXISTS {quote_snowflake(snowflake_name(database))}.{quote_snowflake(snowflake_name(schema))}",
    )


def _whole(value: int, name: str) -> int:
    # Values reach SQL text (GENERATOR's row count must be a constant), so only plain integers pass.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def insert_transactions(
    conn: Any,
    *,
    database: str,
    schema: str,
    table: str,
    rows: int,
    first_id: int = 1,
    seed: int = 0,
    updated_at: str | None = None,
) -> int:
    """Append `rows` transactions with ids first_id .. first_id + rows - 1; returns the row count.

    `updated_at` (a 'YYYY-MM-DD HH:MI:SS' literal) gives every new row that UPDATED_AT; by default it follows
    BOOKED_AT, one row every 17 seconds from 2024-01-01.
    """
    rows, first_id, seed = _whole(rows, "rows"), _whole(first_id, "first_id"), _whole(seed, "seed")
    if rows == 0:
        return 0
    if updated_at is not None and not _is_timestamp_literal(updated_at):
        raise ValueError(f"updated_at must look like 'YYYY-MM-DD HH:MI:SS', got {updated_at!r}")
    offset = first_id - 1
    booked = f"DATEADD(second, n * 17, '{FIRST_TIMESTAMP}'::TIMESTAMP_NTZ)"
    updated = f"'{updated_at}'::TIMESTAMP_NTZ" if updated_at else booked
    _execute(
        conn,
        f"INSERT INTO {_name(database, schema, table)} "  # noqa: S608 - integers validated, names quoted
        "SELECT n, "
        f"1000 + MOD(n * 7919 + {seed}, {ACCOUNT_COUNT}), "
        f"(MOD(n * 2654435761 + {seed} * 40503, 2000001) - 1000000) / 100, "
        "CASE MOD(n, 3) WHEN 0 THEN 'EUR' WHEN 1 THEN 'USD' ELSE 'GBP' END, "
        "'Payment ' || n || ' to supplier ' || MOD(n * 31, 977), "
        "CASE MOD(n, 5) WHEN 0 THEN 'rent' WHEN 1 THEN 'payroll' WHEN 2 THEN 'fees' WHEN 3 THEN 'travel' "
        "ELSE 'supplies' END, "
        f"{booked}, "
        f"DATEADD(day, MOD(n, 730), '{FIRST_TIMESTAMP}'::DATE), "
        "MOD(n, 97) = 0, "
        "OBJECT_CONSTRUCT('channel', CASE MOD(n, 2) WHEN 0 THEN 'card' ELSE 'transfer' END, "
        "'batch', MOD(n, 100)), "
        f"{updated} "
        f"FROM (SELECT SEQ8() + 1 + {offset} AS n FROM TABLE(GENERATOR(ROWCOUNT => {rows})))",
    )
    return rows


def _is_timestamp_literal(value: str) -> bool:
    import datetime as dt

    try:
        dt.datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return False
    return True


def seed_transactions(conn: Any, *, database: str, schema: str, table: str, rows: int, seed: int = 0) -> int:
    """(Re)create a TRANSACTIONS-like table (11 columns, primary key TXN_ID) holding `rows` rows."""
    ensure_schema(conn, database=database, schema=schema)
    _execute(
        conn, f"CREATE OR REPLACE TABLE {_name(database, schema, table)} ({', '.join(TRANSACTIONS_COLUMNS)})"
    )
    return insert_transactions(conn, database=database, schema=schema, table=table, rows=rows, seed=seed)


def seed_demo_dataset(
    conn: Any, *, database: str, schema: str = "PUBLIC", rows: int = 100_000, seed: int = 0
) -> dict[str, int]:
    """ACCOUNTS, TRANSACTIONS and MARKET_PRICES, each with a primary key and an UPDATED_AT column.

    TRANSACTIONS gets `rows` rows, ACCOUNTS one row per account they refer to, MARKET_PRICES daily closing
    prices of a few instruments. Returns the row count of each table.
    """
    rows, seed = _whole(rows, "rows"), _whole(seed, "seed")
    ensure_schema(conn, database=database, schema=schema)
    counts = {
        "TRANSACTIONS": seed_transactions(
            conn, database=database, schema=schema, table="TRANSACTIONS", rows=rows, seed=seed
        )
    }

    accounts = _name(database, schema, "ACCOUNTS")
    _execute(
        conn,
        f"CREATE OR REPLACE TABLE {accounts} ("
        "ACCOUNT_ID NUMBER(38,0) NOT NULL, ACCOUNT_NUMBER VARCHAR(34) NOT NULL, HOLDER_NAME VARCHAR, "
        "ACCOUNT_TYPE VARCHAR, CURRENCY VARCHAR(3) NOT NULL, CREDIT_LIMIT NUMBER(18,2), OPENED_ON DATE, "
        "IS_ACTIVE BOOLEAN NOT NULL, UPDATED_AT TIMESTAMP_NTZ NOT NULL, PRIMARY KEY (ACCOUNT_ID))",
    )
    _execute(
        conn,
        f"INSERT INTO {accounts} "  # noqa: S608 - integers validated, names quoted
        "SELECT 1000 + n, "
        "'DE' || LPAD(TO_VARCHAR(MOD(n * 7 + 11, 97)), 2, '0') || '5001' || LPAD(TO_VARCHAR(n * 104729 + "
        f"{seed}), 14, '0'), "
        "'Holder ' || n, "
        "CASE MOD(n, 3) WHEN 0 THEN 'checking' WHEN 1 THEN 'savings' ELSE 'credit' END, "
        "CASE MOD(n, 3) WHEN 0 THEN 'EUR' WHEN 1 THEN 'USD' ELSE 'GBP' END, "
        "CASE WHEN MOD(n, 3) = 2 THEN (MOD(n * 613, 500) + 1) * 100 ELSE NULL END, "
        "DATEADD(day, -MOD(n * 37, 3650), '2024-01-01'::DATE), "
        "MOD(n, 41) <> 0, "
        f"DATEADD(minute, n, '{FIRST_TIMESTAMP}'::TIMESTAMP_NTZ) "
        f"FROM (SELECT SEQ8() AS n FROM TABLE(GENERATOR(ROWCOUNT => {ACCOUNT_COUNT})))",
    )
    counts["ACCOUNTS"] = ACCOUNT_COUNT

    prices = _name(database, schema, "MARKET_PRICES")
    _execute(
        conn,
        f"CREATE OR REPLACE TABLE {prices} ("
        "INSTRUMENT VARCHAR(12) NOT NULL, PRICE_DATE DATE NOT NULL, CLOSE_PRICE NUMBER(18,6) NOT NULL, "
        "VOLUME NUMBER(38,0), SOURCE VARIANT, UPDATED_AT TIMESTAMP_NTZ NOT NULL, "
        "PRIMARY KEY (INSTRUMENT, PRICE_DATE))",
    )
    days = 730
    instruments = ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "SPX", "DAX")
    selects = " UNION ALL ".join(
        f"SELECT '{code}' AS code, {index} AS k" for index, code in enumerate(instruments)
    )
    _execute(
        conn,
        f"INSERT INTO {prices} "  # noqa: S608 - integers validated, names quoted, codes are constants
        "SELECT i.code, DATEADD(day, d.n, '2023-01-01'::DATE), "
        f"(100000 + MOD(d.n * 7919 + i.k * 104729 + {seed}, 20000)) / 1000, "
        "MOD(d.n * 2654435761 + i.k, 10000000), "
        "OBJECT_CONSTRUCT('vendor', 'refinitiv', 'k', i.k), "
        "DATEADD(hour, d.n * 24 + 18, '2023-01-01 00:00:00'::TIMESTAMP_NTZ) "
        f"FROM (SELECT SEQ8() AS n FROM TABLE(GENERATOR(ROWCOUNT => {days}))) d CROSS JOIN ({selects}) i",
    )
    counts["MARKET_PRICES"] = days * len(instruments)
    return counts
