"""The protection catalog, `_fdm.protected_columns`: how each synced table's protected columns are stored.

Keyed by the target table (schema, table) and column: the stored values belong to the target, whatever fdm
calls the table (an admin may rename it; `table_name` is kept as information, updated on each publish).
Written in the publishing transaction, so it always describes the rows the target holds; readers, rotation
and the next run read it to decode values and to notice a change of protection.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import psycopg

from syncengine.pipeline.identifiers import quote_postgres
from syncengine.pipeline.protection.blind_index import DEFAULT_BLIND_INDEX_BITS
from syncengine.pipeline.protection.plan import ColumnProtection, ProtectionPlan
from syncengine.pipeline.schema.target import qualified
from syncengine.pipeline.watermark import STATE_SCHEMA

CATALOG_TABLE = "protected_columns"
CATALOG = f"{STATE_SCHEMA}.{CATALOG_TABLE}"
CATALOG_KEY = "protected_columns_target_pkey"  # the primary key by target; older installations had another
# Rows written before blind index versions existed hold version 1 indexes.
BLIND_INDEX_VERSION_COLUMN = "blind_index_version integer NOT NULL DEFAULT 1"
MAX_IDENTIFIER_BYTES = 63  # PostgreSQL cuts longer names, so two long ones could become one


def catalog_table_sql() -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {CATALOG} ("
        "table_name text NOT NULL, target_schema text NOT NULL, target_table text NOT NULL, "
        "column_name text NOT NULL, source_column text NOT NULL, plain_type text NOT NULL, "
        "encrypted boolean NOT NULL, compressed boolean NOT NULL, blind_index_column text, "
        "blind_index_bits integer, row_key text[] NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), "
        f"{BLIND_INDEX_VERSION_COLUMN}, "
        f"CONSTRAINT {CATALOG_KEY} PRIMARY KEY (target_schema, target_table, column_name))"
    )


def catalog_current_sql() -> str:
    """A boolean SQL expression: the catalog exists in its current shape (keyed by target, with blind index
    versions)."""
    relation = (
        "JOIN pg_class r ON r.oid = {alias}.{column} JOIN pg_namespace n ON n.oid = r.relnamespace "
        f"WHERE n.nspname = '{STATE_SCHEMA}' AND r.relname = '{CATALOG_TABLE}'"
    )
    return (
        f"EXISTS (SELECT 1 FROM pg_constraint c {relation.format(alias='c', column='conrelid')} "  # noqa: S608
        f"AND c.conname = '{CATALOG_KEY}') AND EXISTS (SELECT 1 FROM pg_attribute a "
        f"{relation.format(alias='a', column='attrelid')} AND a.attname = 'blind_index_version' "
        "AND NOT a.attisdropped)"
    )


def upgrade_catalog(conn: psycopg.Connection) -> None:
    """Key an older catalog (primary key: fdm's table name and column) by target, in place; a no-op once done.

    Call under the bootstrap lock, after `catalog_table_sql`. A target may have rows under two fdm names (a
    table renamed before this upgrade, whose next run wrote the catalog again under its new name): the rows
    of the name published last describe the stored values, the others are dropped.
    """
    row = conn.execute(f"SELECT {catalog_current_sql()}").fetchone()
    if row and row[0]:
        return
    conn.execute(f"ALTER TABLE {CATALOG} ADD COLUMN IF NOT EXISTS {BLIND_INDEX_VERSION_COLUMN}")
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = %s::regclass AND conname = %s)",
        (CATALOG, CATALOG_KEY),
    ).fetchone()
    if row and row[0]:
        return
    conn.execute(
        f"DELETE FROM {CATALOG} AS old USING {CATALOG} AS newer "  # noqa: S608 - constants
        "WHERE newer.target_schema = old.target_schema AND newer.target_table = old.target_table "
        "AND newer.table_name <> old.table_name AND (newer.updated_at, newer.table_name) > "
        "(old.updated_at, old.table_name)"
    )
    for (name,) in conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'", (CATALOG,)
    ).fetchall():
        conn.execute(f"ALTER TABLE {CATALOG} DROP CONSTRAINT {quote_postgres(name)}")
    conn.execute(
        f"ALTER TABLE {CATALOG} ADD CONSTRAINT {CATALOG_KEY} "
        "PRIMARY KEY (target_schema, target_table, column_name)"
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

    def blind_index_versions(self) -> dict[str, int]:
        """The oldest version of each searchable column's blind index values, by target column."""
        return {
            column.target_name: column.blind_index_version for column in self.columns if column.blind_index
        }


def read_catalog(conn: psycopg.Connection, schema: str, table: str) -> CatalogTable | None:
    """The target table's protected columns as the last published run recorded them, or None."""
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (CATALOG,)).fetchone()
    if not exists or not exists[0]:
        return None
    rows = conn.execute(
        f"SELECT table_name, column_name, source_column, plain_type, encrypted, compressed, "  # noqa: S608
        # Read through to_jsonb: a catalog not yet upgraded has no blind index version (its indexes are v1).
        "blind_index_column, blind_index_bits, row_key, (to_jsonb(c) ->> 'blind_index_version')::integer "
        f"FROM {CATALOG} AS c "
        "WHERE target_schema = %s AND target_table = %s ORDER BY updated_at DESC, table_name DESC, column_name",
        (schema, table),
    ).fetchall()
    if not rows:
        return None
    # Until the upgrade keys the catalog by target, a renamed table may have rows under its old name too:
    # the rows published last describe the stored values.
    rows = sorted((row for row in rows if row[0] == rows[0][0]), key=lambda row: row[1])
    columns = tuple(
        ColumnProtection(
            target_name=row[1],
            source_name=row[2],
            plain_type=row[3],
            encrypted=row[4],
            compressed=row[5],
            blind_index=row[6],
            blind_index_bits=row[7] or DEFAULT_BLIND_INDEX_BITS,
            blind_index_version=row[9] or 1,
        )
        for row in rows
    )
    return CatalogTable(
        table_name=rows[0][0],
        target_schema=schema,
        target_table=table,
        columns=columns,
        row_key=tuple(rows[0][8]),
    )


def write_catalog(
    conn: psycopg.Connection, *, table_name: str, schema: str, table: str, plan: ProtectionPlan | None
) -> None:
    """Replace the target table's catalog rows (call inside the publishing transaction); `table_name`, fdm's
    name of the table, is recorded as information."""
    conn.execute(
        f"DELETE FROM {CATALOG} WHERE target_schema = %s AND target_table = %s",  # noqa: S608
        (schema, table),
    )
    if plan is None:
        return
    with conn.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {CATALOG} (table_name, target_schema, target_table, column_name, "  # noqa: S608
            "source_column, plain_type, encrypted, compressed, blind_index_column, blind_index_bits, row_key, "
            "blind_index_version) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    table_name,
                    schema,
                    table,
                    *column.catalog_row(),
                    list(plan.row_key),
                    column.blind_index_version,
                )
                for column in plan.columns
            ],
        )


def set_blind_index_version(
    conn: psycopg.Connection, *, schema: str, table: str, column: str, version: int
) -> None:
    """Record that every blind index value of the column is in `version` (after rotation rewrote them)."""
    conn.execute(
        f"UPDATE {CATALOG} SET blind_index_version = %s "  # noqa: S608
        "WHERE target_schema = %s AND target_table = %s AND column_name = %s",
        (version, schema, table, column),
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
