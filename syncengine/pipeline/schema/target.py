"""The target table as PostgreSQL's catalog describes it, and the DDL that creates or evolves it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from syncengine.pipeline.identifiers import quote_postgres


@dataclass(frozen=True)
class TargetColumn:
    name: str
    type: str  # as format_type() prints it
    not_null: bool


@dataclass(frozen=True)
class TargetTable:
    schema: str
    name: str
    columns: tuple[TargetColumn, ...]
    primary_key: tuple[str, ...]
    unique_keys: tuple[frozenset[str], ...]  # column sets of the primary key and unique indexes

    def column(self, name: str) -> TargetColumn | None:
        return next((column for column in self.columns if column.name == name), None)

    def has_unique_key(self, columns: Sequence[str]) -> bool:
        return frozenset(columns) in self.unique_keys


def qualified(schema: str, table: str) -> str:
    return f"{quote_postgres(schema)}.{quote_postgres(table)}"


def inspect_target(conn: psycopg.Connection, schema: str, table: str) -> TargetTable | None:
    """The existing target table, or None when there is none.

    Reads the catalogs only, never the table: a run must not queue behind a report that holds the table.
    """
    row = conn.execute("SELECT to_regclass(%s)::oid", (qualified(schema, table),)).fetchone()
    oid = row[0] if row else None
    if oid is None:
        return None
    columns = tuple(
        TargetColumn(name=name, type=type_, not_null=not_null)
        for name, type_, not_null in conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
            "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (oid,),
        )
    )
    keys = conn.execute(
        "SELECT i.indisprimary, array_agg(a.attname ORDER BY k.ord) "
        "FROM pg_index i "
        "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = %s AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL "
        "GROUP BY i.indexrelid, i.indisprimary",
        (oid,),
    ).fetchall()
    primary_key = next((tuple(names) for is_primary, names in keys if is_primary), ())
    return TargetTable(
        schema=schema,
        name=table,
        columns=columns,
        primary_key=primary_key,
        unique_keys=tuple(frozenset(names) for _, names in keys),
    )


def create_table_sql(schema: str, table: str, columns: Sequence[tuple[str, str]]) -> str:
    definitions = ", ".join(f"{quote_postgres(name)} {type_}" for name, type_ in columns)
    return f"CREATE TABLE {qualified(schema, table)} ({definitions})"


def add_primary_key_sql(schema: str, table: str, primary_key: Sequence[str]) -> str:
    names = ", ".join(quote_postgres(name) for name in primary_key)
    return f"ALTER TABLE {qualified(schema, table)} ADD PRIMARY KEY ({names})"


def add_column_sql(schema: str, table: str, column: str, type_: str) -> str:
    return f"ALTER TABLE {qualified(schema, table)} ADD COLUMN {quote_postgres(column)} {type_}"


def alter_type_sql(schema: str, table: str, column: str, type_: str, *, using_null: bool = False) -> str:
    """Change a column's type, converting its values (or, `using_null`, emptying it for a full reload)."""
    using = f"NULL::{type_}" if using_null else f"{quote_postgres(column)}::{type_}"
    return f"ALTER TABLE {qualified(schema, table)} ALTER COLUMN {quote_postgres(column)} TYPE {type_} USING {using}"
