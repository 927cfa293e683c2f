"""Blind index names: PostgreSQL keeps 63 bytes of a name, so fdm derives short unique ones; two long column
names that share their first 63 bytes still get one index each (`IF NOT EXISTS` would skip the second under a
cut name)."""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants

from __future__ import annotations

import psycopg

from syncengine.pipeline.identifiers import quote_postgres
from syncengine.pipeline.protection.catalog import MAX_IDENTIFIER_BYTES, blind_index_ddl, blind_index_name
from syncengine.pipeline.protection.plan import ColumnProtection, ProtectionPlan

TABLE = "customer_ledger_entries"
PREFIX = "account_holder_registered_postal_address"  # 40 characters: with the table, past 63 bytes


def test_a_short_name_is_kept_as_it_reads():
    assert blind_index_name("ledger", "iban_bidx") == "ledger_iban_bidx_idx"


def test_long_names_that_share_a_prefix_get_different_names_that_postgres_keeps_whole():
    cut = f"{TABLE}_{PREFIX}_one_bidx_idx"[:MAX_IDENTIFIER_BYTES]
    assert cut == f"{TABLE}_{PREFIX}_two_bidx_idx"[:MAX_IDENTIFIER_BYTES]  # what a plain cut would collide on
    first = blind_index_name(TABLE, f"{PREFIX}_one_bidx")
    second = blind_index_name(TABLE, f"{PREFIX}_two_bidx")
    assert first != second
    assert len(first.encode()) <= MAX_IDENTIFIER_BYTES and len(second.encode()) <= MAX_IDENTIFIER_BYTES
    assert first == blind_index_name(TABLE, f"{PREFIX}_one_bidx")  # the same name on every run


def test_a_long_name_in_multibyte_characters_is_cut_on_a_character_boundary():
    name = blind_index_name(TABLE, "é" * 40 + "_bidx")
    assert len(name.encode()) <= MAX_IDENTIFIER_BYTES
    name.encode().decode()  # no half character left at the cut


def _plan(*blind_indexes: str) -> ProtectionPlan:
    columns = tuple(
        ColumnProtection(
            source_name=name.upper(),
            target_name=name.removesuffix("_bidx"),
            plain_type="text",
            encrypted=True,
            compressed=False,
            blind_index=name,
        )
        for name in blind_indexes
    )
    return ProtectionPlan(
        table=TABLE, target_schema="public", target_table=TABLE, columns=columns, row_key=("id",)
    )


def test_two_long_blind_index_columns_get_two_indexes(scratch_database):
    columns = [f"{PREFIX}_one_bidx", f"{PREFIX}_two_bidx"]
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        definitions = ", ".join(f"{quote_postgres(name)} bigint" for name in columns)
        conn.execute(f"CREATE TABLE public.{TABLE} (id integer, {definitions})")
        for _ in range(2):  # a second run's DDL is a no-op
            for statement in blind_index_ddl("public", TABLE, _plan(*columns)):
                conn.execute(statement)
        indexed = conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] WHERE i.indrelid = %s::regclass",
            (f"public.{TABLE}",),
        ).fetchall()
    assert sorted(name for (name,) in indexed) == sorted(columns)
