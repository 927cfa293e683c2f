"""The protection catalog, `_fdm.protected_columns`: how each synced table's protected columns are stored.

Written in the publishing transaction, so it always describes the rows the target holds; readers, rotation
and the next run read it to decode values and to notice a change of protection.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import psycopg

from syncengine.pipeline.identifiers import quote_postgres
from syncengine.pipeline.protection.crypto import DEFAULT_BLIND_INDEX_BITS
from syncengine.pipeline.protection.plan import ColumnProtection, ProtectionPlan
from syncengine.pipeline.schema.target import qualified
from syncengine.pipeline.watermark import STATE_SCHEMA

CATALOG_TABLE = "protected_columns"
CATALOG = f"{STATE_SCHEMA}.{CATALOG_TABLE}"
MAX_IDENTIFIER_BYTES = 63  # PostgreSQL cuts longer names, so two long ones could become one


def catalog_table_sql() -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {CATALOG} ("
        "table_name text NOT NULL, target_schema text NOT NULL, target_table text NOT NULL, "
        "column_name text NOT NULL, source_column text NOT NULL, plain_type text NOT NULL, "
        "encrypted boolean NOT NULL, compressed boolean NOT NULL, blind_index_column text, "
        "blind_index_bits integer, row_key text[] NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), "
        "PRIMARY KEY (table_name, column_name))"
    )


@dataclass(frozen=True)
class CatalogTable:
    """What the catalog says about one synced table's protected columns."""

    table_name: str
    target_schema: str
    target_table: str
    columns: tuple[ColumnProtection, ...]
    row_key: tuple[str, ...]

    @property
    def target(self) -> str:
        return f"{self.target_schema}.{self.target_table}"

    def by_target(self) -> dict[str, ColumnProtection]:
        return {column.target_name: column for column in self.columns}

    def signature(self) -> list[tuple[Any, ...]]:
        return sorted((*column.catalog_row(), list(self.row_key)) for column in self.columns)


def read_catalog(conn: psycopg.Connection, table_name: str) -> CatalogTable | None:
    """The table's protected columns as the last published run recorded them, or None."""
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (CATALOG,)).fetchone()
    if not exists or not exists[0]:
        return None
    rows = conn.execute(
        f"SELECT target_schema, target_table, column_name, source_column, plain_type, encrypted, compressed, "  # noqa: S608
        f"blind_index_column, blind_index_bits, row_key FROM {CATALOG} "
        "WHERE table_name = %s ORDER BY column_name",
        (table_name,),
    ).fetchall()
    if not rows:
        return None
    columns = tuple(
        ColumnProtection(
            target_name=row[2],
            source_name=row[3],
            plain_type=row[4],
            encrypted=row[5],
            compressed=row[6],
            blind_index=row[7],
            blind_index_bits=row[8] or DEFAULT_BLIND_INDEX_BITS,
        )
        for row in rows
    )
    return CatalogTable(
        table_name=table_name,
        target_schema=rows[0][0],
        target_table=rows[0][1],
        columns=columns,
        row_key=tuple(rows[0][9]),
    )


def write_catalog(
    conn: psycopg.Connection, *, table_name: str, schema: str, table: str, plan: ProtectionPlan | None
) -> None:
    """Replace the table's catalog rows (call inside the publishing transaction)."""
    conn.execute(f"DELETE FROM {CATALOG} WHERE table_name = %s", (table_name,))  # noqa: S608
    if plan is None:
        return
    with conn.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {CATALOG} (table_name, target_schema, target_table, column_name, "  # noqa: S608
            "source_column, plain_type, encrypted, compressed, blind_index_column, blind_index_bits, row_key) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (table_name, schema, table, *column.catalog_row(), list(plan.row_key))
                for column in plan.columns
            ],
        )


def blind_index_name(table: str, column: str) -> str:
    """`<table>_<column>_idx`, or, when that is longer than PostgreSQL keeps, a cut of it with a hash of the
    whole name: two long column names that share a prefix still get two indexes (`IF NOT EXISTS` would
    silently skip the second under a cut name)."""
    name = f"{table}_{column}_idx"
    if len(name.encode()) <= MAX_IDENTIFIER_BYTES:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    head = name.encode()[: MAX_IDENTIFIER_BYTES - len(digest) - 1].decode(errors="ignore")
    return f"{head}_{digest}"


def blind_index_ddl(schema: str, table: str, plan: ProtectionPlan) -> list[str]:
    """CREATE INDEX statements for the blind index columns (named per column; a no-op once they exist)."""
    statements = []
    for column in plan.columns:
        if column.blind_index:
            index_name = blind_index_name(table, column.blind_index)
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {quote_postgres(index_name)} ON {qualified(schema, table)} "
                f"({quote_postgres(column.blind_index)})"
            )
    return statements
