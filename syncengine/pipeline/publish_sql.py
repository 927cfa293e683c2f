"""The statements of each way to publish staged rows into the target (`publish` runs them in its one
transaction and checks what they report):

- full: TRUNCATE, then INSERT ... SELECT with the target's indexes set aside and rebuilt once after (`indexes`);
- upsert: INSERT ... ON CONFLICT DO UPDATE, touching only rows whose values changed;
- replace slice: the target's rows at or above a watermark (or in a backfill's range) replaced by the staged ones.

History tables publish through `history`, deletes through `deletes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from syncengine.pipeline import indexes
from syncengine.pipeline.identifiers import quote_postgres
from syncengine.pipeline.load import STAGING_SCHEMA
from syncengine.pipeline.plan import RunPlan
from syncengine.pipeline.schema.fdm_columns import LINEAGE_VALUES_SQL, RUN_ID, SYNCED_AT
from syncengine.pipeline.schema.target import qualified


@dataclass
class Published:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0


@dataclass(frozen=True)
class Relations:
    """The staging table and the target it is published into (quoted, schema-qualified names), with the column
    names both share, the target's key and its incremental column."""

    target: str
    staging: str
    columns: tuple[str, ...]
    key: tuple[str, ...] = ()
    watermark: str | None = None
    lineage: bool = False  # write _fdm_synced_at and _fdm_run_id on the rows written

    @classmethod
    def of(cls, plan: RunPlan, staging_table: str) -> Relations:
        return cls(
            target=qualified(plan.spec.target.schema, plan.spec.target.table),
            staging=qualified(STAGING_SCHEMA, staging_table),
            columns=tuple(column.name for column in plan.load_columns),
            key=plan.key,
            watermark=plan.watermark_name,
            lineage=plan.spec.lineage,
        )

    def insert_sql(self, rows: str) -> str:
        """INSERT the rows of the SELECT `rows` (the shared columns), with lineage values when on."""
        if not self.lineage:
            return f"INSERT INTO {self.target} ({_names(self.columns)}) {rows}"  # noqa: S608 - quoted
        names = _names([*self.columns, SYNCED_AT, RUN_ID])
        return (
            f"INSERT INTO {self.target} ({names}) "  # noqa: S608 - identifiers quoted
            f"SELECT {_names(self.columns, 's.')}, {LINEAGE_VALUES_SQL} FROM ({rows}) s"
        )


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


def publish_full(conn: psycopg.Connection, relations: Relations, *, deduplicate: bool) -> Published:
    """TRUNCATE, then INSERT the staged rows with the target's indexes set aside and rebuilt once after
    (`indexes`). The INSERT's row count is what the target holds afterwards: TRUNCATE's lock keeps every other
    writer out, so no count(*) pass is needed to know it."""
    # The rows being replaced are reported as deleted, so a run record shows what a full reload threw away.
    # Counted before the TRUNCATE, while readers still read the old rows.
    target, columns = relations.target, relations.columns
    replaced = count(conn, target)
    conn.execute(f"TRUNCATE {target}")
    rebuild = indexes.set_aside_indexes(conn, target)
    watermark = relations.watermark if deduplicate else None
    source = staged_rows_sql(relations.staging, columns, relations.key, watermark)
    cursor = conn.execute(relations.insert_sql(source))
    indexes.rebuild_indexes(conn, rebuild)
    return Published(inserted=cursor.rowcount, deleted=replaced)


def publish_upsert(conn: psycopg.Connection, relations: Relations, *, distinct_keys: int) -> Published:
    """Insert new keys, update keys whose values changed, leave identical rows alone; count each."""
    target, columns, key = relations.target, relations.columns, relations.key
    others = [name for name in columns if name not in key]
    if others:
        assignments = ", ".join(
            f"{quote_postgres(name)} = EXCLUDED.{quote_postgres(name)}" for name in others
        )
        # Row-wise IS DISTINCT FROM treats NULLs as values, so a NULL becoming a value (or back) is a change.
        if relations.lineage:
            # Set only on rows the WHERE lets through: lineage never makes an unchanged row look changed.
            assignments += f", ({_names([SYNCED_AT, RUN_ID])}) = ({LINEAGE_VALUES_SQL})"
        on_conflict = f"DO UPDATE SET {assignments} WHERE ({_names(others, 't.')}) IS DISTINCT FROM ({_names(others, 'EXCLUDED.')})"
    else:
        on_conflict = "DO NOTHING"
    source = staged_rows_sql(relations.staging, columns, key, relations.watermark)
    insert = relations.insert_sql(source).replace(f"INSERT INTO {target} ", f"INSERT INTO {target} AS t ", 1)
    row = conn.execute(
        f"WITH upserted AS ({insert} "  # noqa: S608 - identifiers quoted
        f"ON CONFLICT ({_names(key)}) {on_conflict} RETURNING (xmax = 0) AS inserted) "
        "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM upserted"
    ).fetchone()
    inserted, updated = (int(row[0]), int(row[1])) if row else (0, 0)
    return Published(inserted=inserted, updated=updated, unchanged=distinct_keys - inserted - updated)


def keys_missing_after_upsert(conn: psycopg.Connection, relations: Relations) -> int:
    """Staged keys that are not in the target after the upsert: must be none."""
    matches = " AND ".join(f"t.{quote_postgres(name)} = s.{quote_postgres(name)}" for name in relations.key)
    row = conn.execute(
        f"SELECT count(*) FROM {relations.staging} s "  # noqa: S608 - identifiers quoted
        f"WHERE NOT EXISTS (SELECT 1 FROM {relations.target} t WHERE {matches})"
    ).fetchone()
    return int(row[0]) if row else 0


def publish_replace_slice(
    conn: psycopg.Connection, relations: Relations, *, since: Any, until: Any = None
) -> Published:
    """Requires `relations.watermark`: the slice at or above `since` (and at or below `until`) is replaced."""
    assert relations.watermark is not None
    target, columns, cursor = relations.target, relations.columns, quote_postgres(relations.watermark)
    condition, params = f"{cursor} >= %s", [since]
    if until is not None:
        condition, params = f"{condition} AND {cursor} <= %s", [since, until]
    deleted = conn.execute(f"DELETE FROM {target} WHERE {condition}", params).rowcount  # noqa: S608 - quoted
    inserted = conn.execute(
        relations.insert_sql(f"SELECT {_names(columns)} FROM {relations.staging}")  # noqa: S608 - quoted
    ).rowcount
    return Published(inserted=inserted, deleted=deleted)
