"""What a backup records about a table, read from PostgreSQL: its columns, constraints and indexes (to create it
again), and checksums of its stored values computed by the server (no row passes through Python).

Checksums are sums of `hashtextextended` over each value's text form (`quote_nullable`, so NULL differs from
the text 'NULL'), per column and per whole row: independent of row order, one scan, and exact (numeric sums).
Sessions that compute them use the same text settings (`SESSION_SETTINGS`), so equal values give equal text.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg

from syncengine.pipeline.identifiers import quote_postgres
from syncengine.pipeline.schema.target import qualified

# Text forms that do not depend on a server's or a session's defaults (time zone, date style, float digits).
SESSION_SETTINGS = (
    "SET LOCAL TimeZone = 'UTC'",
    "SET LOCAL DateStyle = 'ISO, MDY'",
    "SET LOCAL IntervalStyle = 'postgres'",
    "SET LOCAL extra_float_digits = 3",
    "SET LOCAL bytea_output = 'hex'",
)


def apply_session_settings(conn: psycopg.Connection) -> None:
    """Within the current transaction."""
    for statement in SESSION_SETTINGS:
        conn.execute(statement)


def relation_exists(conn: psycopg.Connection, schema: str, table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (qualified(schema, table),)).fetchone()
    return bool(row and row[0])


def describe_columns(conn: psycopg.Connection, relation: str) -> list[dict[str, Any]]:
    """The stored columns in order: name, type (with modifiers), NOT NULL, default expression."""
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
        "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a "
        "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' "
        "ORDER BY a.attnum",
        (relation,),
    ).fetchall()
    return [
        {"name": name, "type": type_, "not_null": notnull, "default": default}
        for name, type_, notnull, default in rows
    ]


def describe_constraints(conn: psycopg.Connection, relation: str) -> list[dict[str, str]]:
    """Primary key, unique and check constraints (foreign keys point elsewhere and are not the table's data)."""
    rows = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('p', 'u', 'c') ORDER BY contype DESC, conname",
        (relation,),
    ).fetchall()
    return [{"name": name, "definition": definition} for name, definition in rows]


def describe_indexes(conn: psycopg.Connection, relation: str) -> list[dict[str, str]]:
    """Indexes that back no constraint, as the index name and what follows `USING` in their definition."""
    rows = conn.execute(
        "SELECT ic.relname, pg_get_indexdef(i.indexrelid), i.indisunique FROM pg_index i "
        "JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = %s::regclass "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) ORDER BY ic.relname",
        (relation,),
    ).fetchall()
    indexes = []
    for name, definition, unique in rows:
        method = re.search(r" USING (.*)$", definition)
        if method:
            indexes.append({"name": name, "using": method.group(1), "unique": unique})
    return indexes


def create_table_sql(relation: str, columns: list[dict[str, Any]]) -> str:
    parts = []
    for column in columns:
        part = f"{quote_postgres(column['name'])} {column['type']}"
        if column.get("default"):
            part += f" DEFAULT {column['default']}"
        if column["not_null"]:
            part += " NOT NULL"
        parts.append(part)
    return f"CREATE TABLE {relation} ({', '.join(parts)})"


def constraint_sql(relation: str, constraint: dict[str, str]) -> str:
    return f"ALTER TABLE {relation} ADD CONSTRAINT {quote_postgres(constraint['name'])} {constraint['definition']}"


def index_sql(relation: str, index: dict[str, Any]) -> str:
    unique = "UNIQUE " if index.get("unique") else ""
    return f"CREATE {unique}INDEX {quote_postgres(index['name'])} ON {relation} USING {index['using']}"


def checksums(conn: psycopg.Connection, relation: str, columns: list[str]) -> dict[str, Any]:
    """Row count, and the checksum of each column and of whole rows, in one scan of the table."""
    expressions = [
        f"coalesce(sum(hashtextextended(quote_nullable({quote_postgres(name)}::text), 0)::numeric), 0)::text"
        for name in columns
    ]
    whole_row = "coalesce(sum(hashtextextended(r::text, 0)::numeric), 0)::text"
    row = conn.execute(
        f"SELECT count(*), {whole_row}, {', '.join(expressions) or 'NULL'} FROM {relation} AS r"  # noqa: S608
    ).fetchone()
    assert row is not None
    return {"rows": int(row[0]), "row_checksum": row[1], "columns": dict(zip(columns, row[2:], strict=False))}


def column_names(conn: psycopg.Connection, relation: str) -> list[str]:
    return [column["name"] for column in describe_columns(conn, relation)]
