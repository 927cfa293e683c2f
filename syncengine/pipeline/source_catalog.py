"""What a Snowflake role can see: its databases, their schemas, and their tables, for choosing a source table
(the admin's source browser). Read-only catalog queries; names come back as Snowflake spells them."""

from __future__ import annotations

from dataclasses import dataclass

from snowflake.connector import SnowflakeConnection

from syncengine.pipeline.identifiers import quote_snowflake
from syncengine.pipeline.source import classify_snowflake_error

INFORMATION_SCHEMA = "INFORMATION_SCHEMA"


@dataclass(frozen=True)
class CatalogTable:
    name: str
    kind: str  # BASE TABLE, VIEW, ...
    rows: int | None  # Snowflake's own count for tables; None for views


def databases(conn: SnowflakeConnection) -> list[str]:
    """The databases the role can see, by name."""
    cursor = conn.cursor()
    try:
        cursor.execute("SHOW TERSE DATABASES")
        names = [column[0].lower() for column in cursor.description or []]
        rows = cursor.fetchall()
    except Exception as exc:
        raise classify_snowflake_error(exc) from exc
    finally:
        cursor.close()
    position = names.index("name")
    return sorted(str(row[position]) for row in rows)


def schemas(conn: SnowflakeConnection, database: str) -> list[str]:
    """The schemas of `database` (its INFORMATION_SCHEMA left out), by name."""
    rows = _query(
        conn,
        f"SELECT SCHEMA_NAME FROM {quote_snowflake(database)}.INFORMATION_SCHEMA.SCHEMATA "  # noqa: S608
        "WHERE SCHEMA_NAME <> ? ORDER BY SCHEMA_NAME",
        (INFORMATION_SCHEMA,),
    )
    return [str(row[0]) for row in rows]


def tables(conn: SnowflakeConnection, database: str, schema: str) -> list[CatalogTable]:
    """The tables and views of `database.schema`, by name, with Snowflake's row count of each table."""
    rows = _query(
        conn,
        f"SELECT TABLE_NAME, TABLE_TYPE, ROW_COUNT FROM {quote_snowflake(database)}.INFORMATION_SCHEMA.TABLES "  # noqa: S608
        "WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
        (schema,),
    )
    return [
        CatalogTable(name=str(name), kind=str(kind), rows=int(count) if count is not None else None)
        for name, kind, count in rows
    ]


def _query(conn: SnowflakeConnection, sql: str, params: tuple[str, ...]) -> list[tuple]:
    cursor = conn.cursor()
    try:
        cursor.execute(sql, params, _force_qmark_paramstyle=True)  # type: ignore[call-overload]
        return list(cursor.fetchall())
    except Exception as exc:
        raise classify_snowflake_error(exc) from exc
    finally:
        cursor.close()
