"""Sample data seeds the emulator in bulk with realistic finance tables that sync as they are."""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants

from __future__ import annotations

from decimal import Decimal

from syncengine.dev.sampledata import insert_transactions, seed_demo_dataset


def test_the_demo_dataset_has_keys_and_incremental_columns(source, make_spec, sync, target):
    counts = seed_demo_dataset(source.conn, database=source.database, rows=2_000)
    assert counts == {"TRANSACTIONS": 2_000, "ACCOUNTS": 5_000, "MARKET_PRICES": 4_380}

    for table, key in (
        ("TRANSACTIONS", ["txn_id"]),
        ("ACCOUNTS", ["account_id"]),
        ("MARKET_PRICES", ["instrument", "price_date"]),
    ):
        result = sync(make_spec(table, watermark_column="UPDATED_AT", batch_size=10_000))
        assert result.rows_inserted == counts[table]
        assert result.watermark_after is not None
        assert [
            name
            for (name,) in target(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
                "ORDER BY array_position(i.indkey, a.attnum)",
                (f"public.{table.lower()}",),
            )
        ] == key


def test_transactions_are_deterministic_and_appendable(source):
    seed_demo_dataset(source.conn, database=source.database, rows=100, seed=7)
    first = source.sql(
        f"SELECT TXN_ID, AMOUNT, METADATA FROM {source.table('TRANSACTIONS')} WHERE TXN_ID = 42"
    )
    insert_transactions(
        source.conn,
        database=source.database,
        schema="PUBLIC",
        table="TRANSACTIONS",
        rows=50,
        first_id=101,
        updated_at="2030-01-01 00:00:00",
    )
    rows = source.sql(f"SELECT COUNT(*), MAX(TXN_ID), MAX(UPDATED_AT) FROM {source.table('TRANSACTIONS')}")
    assert rows[0][:2] == (150, 150)
    assert rows[0][2].year == 2030
    assert first[0][0] == 42 and isinstance(first[0][1], Decimal)
