"""Publishing: moving the staged rows into the target table. Every function here runs inside the one
transaction that also applies drift DDL and advances the watermark (see `runner`), so readers see either the
old rows or the new ones, never a mix.

- full: TRUNCATE then INSERT ... SELECT. TRUNCATE keeps the table itself, so operator-added indexes, grants,
  comments, triggers and dependent views survive; its ACCESS EXCLUSIVE lock makes readers wait for the commit
  (they then see the new rows) instead of seeing an empty or half-filled table.
- upsert (incremental, with a primary key): INSERT ... ON CONFLICT DO UPDATE, touching only rows whose values
  changed, so a run over unchanged source rows writes nothing.
- replace slice (incremental, no primary key): delete the target rows at or above the previous watermark and
  insert the extracted rows, which are exactly the source's rows at or above it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from syncengine.pipeline.identifiers import quote_postgres


@dataclass
class Published:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0


def _names(columns: Sequence[str], prefix: str = "") -> str:
    return ", ".join(prefix + quote_postgres(name) for name in columns)


def staged_rows_sql(staging: str, columns: Sequence[str], key: Sequence[str], watermark: str | None) -> str:
    """The staged rows, one per key when a key repeats: the one with the newest incremental-column value."""
    if not key or watermark is None:
        return f"SELECT {_names(columns)} FROM {staging}"  # noqa: S608 - identifiers are quoted
    return (
        f"SELECT DISTINCT ON ({_names(key)}) {_names(columns)} FROM {staging} "  # noqa: S608 - quoted
        f"ORDER BY {_names(key)}, {quote_postgres(watermark)} DESC NULLS LAST"
    )


def count(conn: psycopg.Connection, relation: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {relation}").fetchone()  # noqa: S608 - relation is quoted
    return int(row[0]) if row else 0


def suspend_primary_key(conn: psycopg.Connection, target: str) -> str | None:
    """Drop the target's primary key for a bulk reload and return the statement that restores it.

    Rebuilding the key's index once after the INSERT is several times faster than maintaining it row by row,
    and shortens the time readers wait on the publish. The constraint comes back with its name and definition
    (columns, INCLUDE, deferrability) before the commit, so nobody sees the table without it. Skipped (None)
    when the definition would not carry everything: a foreign key referring to the table, a comment on the
    constraint or its index, index storage parameters or tablespace, the index used for CLUSTER or as
    replica identity.
    """
    row = conn.execute(
        "SELECT c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
        "JOIN pg_index i ON i.indexrelid = c.conindid JOIN pg_class ic ON ic.oid = c.conindid "
        "WHERE c.conrelid = %s::regclass AND c.contype = 'p' AND ic.reloptions IS NULL AND ic.reltablespace = 0 "
        "AND NOT i.indisclustered AND NOT i.indisreplident "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.confrelid = c.conrelid AND f.contype = 'f') "
        "AND obj_description(c.oid, 'pg_constraint') IS NULL "
        "AND obj_description(c.conindid, 'pg_class') IS NULL",
        (target,),
    ).fetchone()
    if row is None:
        return None
    name, definition = row
    conn.execute(f"ALTER TABLE {target} DROP CONSTRAINT {quote_postgres(name)}")
    return f"ALTER TABLE {target} ADD CONSTRAINT {quote_postgres(name)} {definition}"


def publish_full(
    conn: psycopg.Connection,
    *,
    target: str,
    staging: str,
    columns: Sequence[str],
    key: Sequence[str],
    watermark: str | None,
    deduplicate: bool,
) -> Published:
    # The rows being replaced are reported as deleted, so a run record shows what a full reload threw away.
    replaced = count(conn, target)
    conn.execute(f"TRUNCATE {target}")
    restore_key = suspend_primary_key(conn, target)
    source = staged_rows_sql(staging, columns, key, watermark if deduplicate else None)
    cursor = conn.execute(f"INSERT INTO {target} ({_names(columns)}) {source}")  # noqa: S608 - identifiers quoted
    if restore_key is not None:
        conn.execute(restore_key)
    return Published(inserted=cursor.rowcount, deleted=replaced)


def publish_upsert(
    conn: psycopg.Connection,
    *,
    target: str,
    staging: str,
    columns: Sequence[str],
    key: Sequence[str],
    watermark: str | None,
    distinct_keys: int,
) -> Published:
    """Insert new keys, update keys whose values changed, leave identical rows alone; count each."""
    others = [name for name in columns if name not in key]
    if others:
        assignments = ", ".join(
            f"{quote_postgres(name)} = EXCLUDED.{quote_postgres(name)}" for name in others
        )
        # Row-wise IS DISTINCT FROM treats NULLs as values, so a NULL becoming a value (or back) is a change.
        on_conflict = f"DO UPDATE SET {assignments} WHERE ({_names(others, 't.')}) IS DISTINCT FROM ({_names(others, 'EXCLUDED.')})"
    else:
        on_conflict = "DO NOTHING"
    source = staged_rows_sql(staging, columns, key, watermark)
    row = conn.execute(
        f"WITH upserted AS (INSERT INTO {target} AS t ({_names(columns)}) {source} "  # noqa: S608 - identifiers quoted
        f"ON CONFLICT ({_names(key)}) {on_conflict} RETURNING (xmax = 0) AS inserted) "
        "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM upserted"
    ).fetchone()
    inserted, updated = (int(row[0]), int(row[1])) if row else (0, 0)
    return Published(inserted=inserted, updated=updated, unchanged=distinct_keys - inserted - updated)


def keys_missing_after_upsert(
    conn: psycopg.Connection, *, target: str, staging: str, key: Sequence[str]
) -> int:
    """Staged keys that are not in the target after the upsert: must be none."""
    matches = " AND ".join(f"t.{quote_postgres(name)} = s.{quote_postgres(name)}" for name in key)
    row = conn.execute(
        f"SELECT count(*) FROM {staging} s WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE {matches})"  # noqa: S608
    ).fetchone()
    return int(row[0]) if row else 0


def publish_replace_slice(
    conn: psycopg.Connection,
    *,
    target: str,
    staging: str,
    columns: Sequence[str],
    watermark: str,
    since: Any,
) -> Published:
    deleted = conn.execute(
        f"DELETE FROM {target} WHERE {quote_postgres(watermark)} >= %s",  # noqa: S608 - identifiers quoted
        (since,),
    ).rowcount
    inserted = conn.execute(
        f"INSERT INTO {target} ({_names(columns)}) SELECT {_names(columns)} FROM {staging}"  # noqa: S608
    ).rowcount
    return Published(inserted=inserted, deleted=deleted)
