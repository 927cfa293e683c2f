"""Deletes: finding target rows whose key no longer exists in the source, and what a run does with them.

Detection is set-based. An incremental run reads the source's keys only (`extract.key_query`: no other
column travels), copies them into a staging key table beside the run's staging table, and anti-joins the
target against it in PostgreSQL. A full load that merges (soft deletes, history) anti-joins against its own
staging table, which holds every source row.

Inside the publishing transaction:
- the guard: when more than `deletes.max_ratio` of the target's live rows would go, the run fails with
  `DeleteGuardTripped` and its transaction (the rows, the deletes, the watermark) rolls back, unless the run
  was started with `allow_deletes`;
- hard: DELETE the missing rows; soft: set `_fdm_deleted_at` on them, and clear it on rows whose key is back;
  history: close the current version (see `history`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from snowflake.connector import SnowflakeConnection

from syncengine.pipeline.errors import DeleteGuardTripped, RunCancelled
from syncengine.pipeline.extract import prefetch, stream_batches
from syncengine.pipeline.hooks import Hooks
from syncengine.pipeline.identifiers import quote_postgres
from syncengine.pipeline.load import STAGING_SCHEMA, StagingWriter, create_staging
from syncengine.pipeline.plan import RunPlan
from syncengine.pipeline.postgres import classify_postgres_error
from syncengine.pipeline.schema.drift import LoadColumn
from syncengine.pipeline.schema.fdm_columns import (
    DELETED_AT,
    IS_CURRENT,
    LINEAGE_VALUES_SQL,
    RUN_ID,
    SYNCED_AT,
    VALID_TO,
)
from syncengine.pipeline.schema.target import qualified
from syncengine.pipeline.spec import DeleteMode
from syncengine.pipeline.stage import Staging, drop_staging_after_failure
from syncengine.pipeline.transform.casts import cast_batch


@dataclass
class KeyScan:
    """The source's keys, staged: the key table's name, how many keys arrived and how long the scan took."""

    table: str
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    query_ids: list[str] = field(default_factory=list)  # Snowflake's id for the key query, for the evidence


def key_columns(plan: RunPlan) -> list[LoadColumn]:
    by_name = {column.name: column for column in plan.load_columns}
    return [by_name[name] for name in plan.key]


@contextmanager
def staged_keys(
    conn: psycopg.Connection,
    plan: RunPlan,
    source_conn: SnowflakeConnection,
    *,
    staging: Staging,
    hooks: Hooks,
) -> Iterator[KeyScan | None]:
    """When the plan has a key scan: create the key table (named after the run's staging table, so a later
    run's leftover cleanup finds it), fill it from the source, and drop it if the run fails before publishing
    (which drops it). None when this run looks for no deletes."""
    if plan.key_scan is None:
        yield None
        return
    name = f"{staging.table}_keys"
    try:
        create_staging(conn, name, key_columns(plan))
    except psycopg.Error as exc:
        raise classify_postgres_error(exc, table=plan.spec.name) from exc
    try:
        scan = scan_keys(plan, source_conn, staging=staging, key_table=name, hooks=hooks)
        # Statistics let the planner hash the keys for the anti-join (measured: half the time of the merge
        # join it picks for an unanalysed table, for 70 ms on 1,000,000 keys).
        try:
            conn.execute(f"ANALYZE {staged_relation(name)}")
        except psycopg.Error as exc:
            raise classify_postgres_error(exc, table=plan.spec.name) from exc
        yield scan
    except BaseException:
        drop_staging_after_failure(conn, dsn=staging.dsn, staging=name, table=plan.spec.name, log=hooks.log)
        raise


def scan_keys(
    plan: RunPlan, source_conn: SnowflakeConnection, *, staging: Staging, key_table: str, hooks: Hooks
) -> KeyScan:
    """Read every source key (`plan.key_scan`) and COPY it into `key_table`, batch by batch."""
    assert plan.key_scan is not None
    table = plan.spec.name
    columns = key_columns(plan)
    scan = KeyScan(table=key_table)
    source_names = {column.name: column.plan.source_name for column in columns}
    writer = StagingWriter(
        staging.dsn, key_table, table=table, source_names=source_names, streams=staging.streams
    )
    started = time.perf_counter()
    batches = prefetch(
        stream_batches(
            source_conn, plan.key_scan, batch_size=plan.spec.batch_size, table=table, query_ids=scan.query_ids
        )
    )
    try:
        for batch in batches:
            if hooks.cancelled():
                raise RunCancelled(f"cancelled after reading {scan.rows} source keys", table=table)
            scan.rows += batch.num_rows
            scan.bytes += batch.nbytes
            writer.write(cast_batch(batch, columns, table=table))
        writer.commit()
    finally:
        batches.close()
        writer.close()
    scan.seconds = time.perf_counter() - started
    return scan


def staged_relation(name: str) -> str:
    return qualified(STAGING_SCHEMA, name)


def _absent(key: tuple[str, ...], keys_relation: str) -> str:
    """`NOT EXISTS` the target row `t`'s key among the keys of `keys_relation`."""
    matches = " AND ".join(f"k.{quote_postgres(name)} = t.{quote_postgres(name)}" for name in key)
    return f"NOT EXISTS (SELECT 1 FROM {keys_relation} k WHERE {matches})"  # noqa: S608 - identifiers quoted


def live_rows_filter(plan: RunPlan) -> str:
    """The target rows that can still be deleted: all of them, those not yet flagged, or current versions."""
    if plan.spec.history:
        return f"t.{quote_postgres(IS_CURRENT)}"
    if plan.deletes == DeleteMode.SOFT:
        return f"t.{quote_postgres(DELETED_AT)} IS NULL"
    return "true"


@dataclass(frozen=True)
class DeleteCount:
    missing: int  # live target rows whose key is not among the source's keys
    live: int  # live target rows


def count_missing(conn: psycopg.Connection, plan: RunPlan, target: str, keys_relation: str) -> DeleteCount:
    # Two scans rather than one count(*) FILTER: NOT EXISTS in a WHERE is planned as a hash anti-join, in a
    # FILTER it would be a subquery run once per row.
    live = live_rows_filter(plan)
    row = conn.execute(
        f"SELECT (SELECT count(*) FROM {target} t WHERE {live} AND {_absent(plan.key, keys_relation)}), "  # noqa: S608
        f"(SELECT count(*) FROM {target} t WHERE {live})"
    ).fetchone()
    return DeleteCount(missing=int(row[0]), live=int(row[1])) if row else DeleteCount(0, 0)


def check_guard(plan: RunPlan, counted: DeleteCount, *, allowed: bool) -> dict[str, object]:
    """Raise DeleteGuardTripped when the run would delete more than `max_ratio` of the live rows (unless
    `allowed`); return what was checked, for the run's checks."""
    ratio = plan.spec.deletes.max_ratio
    limit = int(ratio * counted.live)
    checked: dict[str, object] = {
        "mode": str(plan.deletes),
        "rows_missing_from_source": counted.missing,
        "rows_live": counted.live,
        "max_ratio": ratio,
        "allowed": allowed,
    }
    if counted.missing > ratio * counted.live and not allowed:
        share = counted.missing / counted.live if counted.live else 1.0
        raise DeleteGuardTripped(
            f"{counted.missing} of {counted.live} rows ({share:.1%}) are no longer in the source, more than "
            f"deletes.max_ratio {ratio:g} allows (at most {limit}): the source may be truncated or the table "
            "pointed at the wrong one. Nothing was deleted or published; if these deletes are real, run once "
            "allowing deletes (sync_table --allow-deletes)",
            table=plan.spec.name,
        )
    return checked


def remove_missing(conn: psycopg.Connection, plan: RunPlan, target: str, keys_relation: str) -> int:
    """Delete (hard), flag (soft) or close (history) the live rows whose key is missing; how many. A flag or a
    close keeps the lineage of the run that wrote the row's values."""
    absent = _absent(plan.key, keys_relation)
    live = live_rows_filter(plan)
    if plan.spec.history:
        change = f"{quote_postgres(VALID_TO)} = now(), {quote_postgres(IS_CURRENT)} = false"
    elif plan.deletes == DeleteMode.SOFT:
        change = f"{quote_postgres(DELETED_AT)} = now()"
    else:
        return conn.execute(f"DELETE FROM {target} t WHERE {live} AND {absent}").rowcount  # noqa: S608 - quoted
    return conn.execute(f"UPDATE {target} t SET {change} WHERE {live} AND {absent}").rowcount  # noqa: S608


def revive_present(
    conn: psycopg.Connection, plan: RunPlan, target: str, keys_relation: str, *, lineage: bool
) -> int:
    """Soft deletes: clear `_fdm_deleted_at` on rows whose key is in the source again; how many."""
    changes = [f"{quote_postgres(DELETED_AT)} = NULL"]
    if lineage:
        changes.append(f"({quote_postgres(SYNCED_AT)}, {quote_postgres(RUN_ID)}) = ({LINEAGE_VALUES_SQL})")
    matches = " AND ".join(f"k.{quote_postgres(name)} = t.{quote_postgres(name)}" for name in plan.key)
    return conn.execute(
        f"UPDATE {target} t SET {', '.join(changes)} WHERE t.{quote_postgres(DELETED_AT)} IS NOT NULL "  # noqa: S608
        f"AND EXISTS (SELECT 1 FROM {keys_relation} k WHERE {matches})"
    ).rowcount


@dataclass(frozen=True)
class DeleteScope:
    """Where a publish finds deleted rows: the target, the run's staging table, the key scan's table (quoted
    names), whether this run may pass the guard, and whether lineage columns are written."""

    target: str
    staging: str
    key_table: str | None
    allowed: bool
    lineage: bool


def source_keys(plan: RunPlan, scope: DeleteScope) -> str | None:
    """Where the source's keys are: the key scan's table (incremental), the staging table (a merging full load
    holds every source row), or nowhere (no deletes this run)."""
    if not plan.key or plan.drift.creates_table:
        return None
    if scope.key_table is not None:
        return scope.key_table
    if plan.since is None and plan.merges:
        return scope.staging
    return None


def apply_deletes(conn: psycopg.Connection, plan: RunPlan, scope: DeleteScope, checks: dict[str, Any]) -> int:
    """Remove (hard), flag (soft) or close (history) the rows whose key left the source, behind the guard;
    how many. A full load that replaces the table has already removed them (guarded by `guard_replace`)."""
    keys = source_keys(plan, scope)
    if keys is None:
        return 0
    # Remove first and judge after: one anti-join instead of two. A tripped guard raises, and the rollback
    # takes the removal back with everything else the run did.
    row = conn.execute(f"SELECT count(*) FROM {scope.target} t WHERE {live_rows_filter(plan)}").fetchone()  # noqa: S608
    live = int(row[0]) if row else 0
    removed = remove_missing(conn, plan, scope.target, keys)
    if plan.deletes != DeleteMode.OFF:
        checks["deletes"] = check_guard(plan, DeleteCount(missing=removed, live=live), allowed=scope.allowed)
    if plan.deletes == DeleteMode.SOFT and not plan.spec.history:
        checks["rows_undeleted"] = revive_present(conn, plan, scope.target, keys, lineage=scope.lineage)
    return removed


def guard_replace(conn: psycopg.Connection, plan: RunPlan, scope: DeleteScope) -> dict[str, object] | None:
    """`deletes: hard` on a full load: the rows the reload would drop, checked against the guard before the
    TRUNCATE (by key when there is one, else by how much the row count shrinks)."""
    if plan.deletes != DeleteMode.HARD or plan.drift.creates_table:
        return None
    if plan.key:
        return check_guard(
            plan, count_missing(conn, plan, scope.target, scope.staging), allowed=scope.allowed
        )
    row = conn.execute(
        f"SELECT (SELECT count(*) FROM {scope.target}), (SELECT count(*) FROM {scope.staging})"  # noqa: S608
    ).fetchone()
    live, staged = (int(row[0]), int(row[1])) if row else (0, 0)
    return check_guard(plan, DeleteCount(missing=max(0, live - staged), live=live), allowed=scope.allowed)
