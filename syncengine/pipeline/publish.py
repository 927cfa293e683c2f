"""Publishing: moving the staged rows into the target table. Every function here runs inside the one
transaction that also applies drift DDL and advances the watermark (`publish_run`), so readers see either the
old rows or the new ones, never a mix.

- full: TRUNCATE then INSERT ... SELECT, the indexes rebuilt once after (`indexes`). TRUNCATE keeps the table
  itself, so operator-added indexes, grants, comments, triggers and dependent views survive; its ACCESS
  EXCLUSIVE lock makes readers wait for the commit (they then see the new rows), never an empty table.
- upsert (incremental, with a primary key): INSERT ... ON CONFLICT DO UPDATE, touching only rows whose values
  changed, so a run over unchanged source rows writes nothing.
- replace slice (incremental, no primary key): replace the target rows at or above the previous watermark (a
  backfill: in its range) with the extracted ones, which are exactly the source's rows there.
- history: see `history`; a full load with soft deletes upserts, keeping the rows the source no longer has.
Then deletes (`deletes`), behind the delete guard. Lineage goes only on rows whose values were written.

The statements of each mode are in `publish_sql`; this module is the transaction around them and the checks
of what they report (every extracted row staged, every staged key in the target, the counts).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from syncengine.pipeline import deletes, history, leases, locks
from syncengine.pipeline.bootstrap import create_schema_if_missing
from syncengine.pipeline.errors import ValidationFailed
from syncengine.pipeline.load import drop_staging
from syncengine.pipeline.plan import RunPlan
from syncengine.pipeline.postgres import classify_postgres_error
from syncengine.pipeline.protection import catalog, dictionaries
from syncengine.pipeline.protection.protector import Protector
from syncengine.pipeline.publish_sql import (
    Published,
    Relations,
    count,
    keys_missing_after_upsert,
    publish_full,
    publish_replace_slice,
    publish_upsert,
    staged_rows_sql,
)
from syncengine.pipeline.schema.fdm_columns import RUN_ID_SETTING
from syncengine.pipeline.stage import Staged
from syncengine.pipeline.watermark import SyncState, Watermark, write_state

# How long one attempt to take the target's lock waits (`lock_target`).
LOCK_ATTEMPT_SECONDS = 1.0


@dataclass(frozen=True)
class PublishOptions:
    """How a run publishes: `lock_timeout` bounds the wait for the target's lock (seconds); `run_id` is the
    caller's id for the run, written with the data so that the run's outcome can be read from the target."""

    lock_timeout: float
    run_id: str | None = None
    allow_deletes: bool = False  # one run past the delete guard
    key_table: str | None = None  # the staged source keys of a delete scan
    release_lease: bool = False  # a sliced run: the table's lease goes with the data (`leases`)


@dataclass
class PublishOutcome:
    published: Published
    watermark: Watermark | None  # the watermark written with the rows
    checks: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def publish_run(
    conn: psycopg.Connection,
    plan: RunPlan,
    staged: Staged,
    *,
    protector: Protector | None,
    options: PublishOptions,
) -> PublishOutcome:
    """One transaction that publishes the staged rows and advances the watermark.

    1. Take the target's lock in short attempts, within `options.lock_timeout` seconds in all (`lock_target`;
       running out is a transient failure).
    2. Run the drift DDL (creating the target's schema when the table is new).
    3. Check that every extracted row was staged, publish them (full, upsert, history or replace slice) and
       check the counts the target reports; then deletes, behind the delete guard (`options.allow_deletes`).
    4. Finish the drift DDL (and a history table's `_current` view), write the protection catalog and blind
       indexes, prune unused dictionaries.
    5. Write the watermark, with the run's id and counts (`options.run_id`), and drop the staging tables.
    Any failure rolls all of it back: the target stays as it was.
    """
    spec = plan.spec
    relations = Relations.of(plan, staged.table)
    outcome = PublishOutcome(published=Published(), watermark=plan.watermark_after(staged.newest))
    source_names = {column.name: column.plan.source_name for column in plan.load_columns}
    started = time.perf_counter()
    try:
        with conn.transaction():
            conn.execute("SELECT set_config(%s, %s, true)", (RUN_ID_SETTING, options.run_id or ""))
            lock_target(conn, plan, relations.target, timeout=options.lock_timeout)
            if plan.drift.creates_table:
                locks.lock_bootstrap(conn)
                create_schema_if_missing(conn, spec.target.schema)
            view_changes = spec.history and bool(plan.drift.ddl)
            if view_changes and not plan.drift.creates_table:
                conn.execute(history.drop_current_view_sql(spec.target.schema, spec.target.table))
            for statement in plan.drift.ddl:
                conn.execute(statement)
            scope = _delete_scope(relations, options)
            outcome.published = _publish_rows(_Rows(conn, plan, relations, staged, scope, outcome.checks))
            outcome.published.deleted += deletes.apply_deletes(conn, plan, scope, outcome.checks)
            _finish_table(conn, plan, staged, protector, outcome.checks)
            if view_changes:
                conn.execute(history.create_current_view_sql(spec.target.schema, spec.target.table))
            published = outcome.published
            outcome.checks["rows_published"] = published.inserted + published.updated + published.unchanged
            outcome.checks["row_counts_match"] = True
            write_state(conn, _state_after(plan, staged, outcome, run_id=options.run_id))
            if options.release_lease and options.run_id is not None:
                leases.release_lease(conn, spec.name, options.run_id)
            drop_staging(conn, staged.table)
            if options.key_table is not None:
                drop_staging(conn, options.key_table)
    except psycopg.Error as exc:
        raise classify_postgres_error(exc, table=spec.name, source_names=source_names) from exc
    outcome.seconds = time.perf_counter() - started
    return outcome


def lock_target(conn: psycopg.Connection, plan: RunPlan, target: str, *, timeout: float) -> None:
    """Take the target table's lock for the publish in attempts of LOCK_ATTEMPT_SECONDS, for `timeout` seconds
    in all, then leave `timeout` as the transaction's lock_timeout for the statements that follow.

    Why attempts: a backend whose client died (a killed worker) stays in PostgreSQL's lock queue until its
    wait ends, and readers queue behind its request. One long wait kept such a dead request, and the readers
    behind it, waiting for the whole publish lock timeout (30 s by default); an attempt lapses within a
    second, the backend then finds its client gone and exits. A live run just asks again; readers that queued
    behind an attempt get through in between.

    A full replace (TRUNCATE) or drift DDL needs ACCESS EXCLUSIVE; a merge only ROW EXCLUSIVE, which readers
    never wait for. A new target has nothing to lock yet.
    """
    deadline = time.monotonic() + timeout
    if not plan.drift.creates_table:
        replaces = bool(plan.drift.ddl) or (plan.since is None and not plan.merges and not plan.spec.history)
        mode = "ACCESS EXCLUSIVE" if replaces else "ROW EXCLUSIVE"
        while True:
            remaining = deadline - time.monotonic()
            attempt = max(min(LOCK_ATTEMPT_SECONDS, remaining), 0.001)
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{int(attempt * 1000) or 1}ms",))
            try:
                with conn.transaction():  # a savepoint: a lapsed attempt leaves the transaction usable
                    conn.execute(f"LOCK TABLE {target} IN {mode} MODE")
                break
            except psycopg.errors.LockNotAvailable:
                if time.monotonic() >= deadline:
                    raise
    conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{int(timeout * 1000)}ms",))


@dataclass(frozen=True)
class _Rows:
    """What publishing the rows reads inside the transaction: its connection, the plan, the staging table and
    the target, what the stage reported, where deleted rows are found, and the checks it records."""

    conn: psycopg.Connection
    plan: RunPlan
    relations: Relations
    staged: Staged
    scope: deletes.DeleteScope
    checks: dict[str, Any]


def _publish_rows(rows: _Rows) -> Published:
    """Publish in the plan's mode, verifying the counts on both sides; records its checks in `rows.checks`."""
    conn, plan, relations, staged = rows.conn, rows.plan, rows.relations, rows.staged
    table = plan.spec.name
    if not plan.spec.history and plan.since is None and (not plan.merges or plan.drift.creates_table):
        return _publish_full(rows)
    in_staging = _count_staged(rows)
    duplicates = int(staged.checks.get("duplicates_resolved", 0) or 0)
    distinct = int(staged.checks.get("distinct_keys", in_staging - duplicates) or 0)
    if plan.spec.history:
        return _publish_history(conn, relations, distinct=distinct, table=table)
    if relations.key:
        published = publish_upsert(conn, relations, distinct_keys=distinct)
        missing = keys_missing_after_upsert(conn, relations)
        if missing or published.unchanged < 0:
            raise ValidationFailed(
                f"{distinct} keys staged but {missing} missing from the target after publishing", table=table
            )
        rows.checks["rows_unchanged"] = published.unchanged
        return published
    return _publish_slice(conn, plan, relations, in_staging=in_staging)


def _count_staged(rows: _Rows) -> int:
    """The staging table's rows, which must be every extracted row."""
    in_staging = count(rows.conn, rows.relations.staging)
    rows.checks["rows_staged"] = in_staging
    extracted = rows.staged.extract.rows
    if in_staging != extracted:
        raise ValidationFailed(
            f"{extracted} rows extracted but {in_staging} staged", table=rows.plan.spec.name
        )
    return in_staging


def _publish_full(rows: _Rows) -> Published:
    """A full load. Without repeated keys every staged row is inserted, so the INSERT's row count alone shows
    that staging held every extracted row and the target holds them now; with them, staging is counted first."""
    plan, staged, checks = rows.plan, rows.staged, rows.checks
    table = plan.spec.name
    duplicates = int(staged.checks.get("duplicates_resolved", 0) or 0)
    if duplicates:
        _count_staged(rows)
    if (guarded := deletes.guard_replace(rows.conn, plan, rows.scope)) is not None:
        checks["deletes"] = guarded
    published = publish_full(rows.conn, rows.relations, deduplicate=duplicates > 0)
    expected = staged.extract.rows - duplicates
    if published.inserted != expected:
        message = f"{staged.extract.rows} rows extracted ({duplicates} repeated keys), {published.inserted} published"
        raise ValidationFailed(message, table=table)
    checks.setdefault("rows_staged", staged.extract.rows)
    return published


def _publish_slice(
    conn: psycopg.Connection, plan: RunPlan, relations: Relations, *, in_staging: int
) -> Published:
    """A keyless incremental run: replace the rows at or above the watermark, or a backfill's range."""
    assert plan.since is not None  # a keyless table only merges incrementally
    start, end = (plan.backfill.start, plan.backfill.end) if plan.backfill else (plan.since, None)
    published = publish_replace_slice(
        conn, relations, since=start.value, until=end.value if end is not None else None
    )
    if published.inserted != in_staging:
        raise ValidationFailed(
            f"{in_staging} rows staged but {published.inserted} inserted", table=plan.spec.name
        )
    return published


def _publish_history(
    conn: psycopg.Connection, relations: Relations, *, distinct: int, table: str
) -> Published:
    versioned = history.VersionedTable(
        target=relations.target, columns=relations.columns, key=relations.key, lineage=relations.lineage
    )
    staged_rows = staged_rows_sql(relations.staging, relations.columns, relations.key, relations.watermark)
    new, changed = history.publish_history(
        conn, versioned, staged_rows=staged_rows, distinct=distinct, name=table
    )
    return Published(inserted=new, updated=changed, unchanged=distinct - new - changed)


def _delete_scope(relations: Relations, options: PublishOptions) -> deletes.DeleteScope:
    keys = deletes.staged_relation(options.key_table) if options.key_table else None
    return deletes.DeleteScope(
        relations.target, relations.staging, keys, options.allow_deletes, relations.lineage
    )


def _finish_table(
    conn: psycopg.Connection,
    plan: RunPlan,
    staged: Staged,
    protector: Protector | None,
    checks: dict[str, Any],
) -> None:
    """With the rows in: the drift DDL that follows them, blind indexes, the protection catalog and, after a
    full load, dropping the dictionaries no stored frame uses any more."""
    spec = plan.spec
    for statement in plan.drift.finish_ddl:
        conn.execute(statement)
    protection = protector.plan if protector else None
    if protection is not None:
        for statement in catalog.blind_index_ddl(spec.target.schema, spec.target.table, protection):
            conn.execute(statement)
    catalog.write_catalog(
        conn, table_name=spec.name, schema=spec.target.schema, table=spec.target.table, plan=protection
    )
    if not plan.merges:  # merged tables keep rows written with older dictionaries
        keep = staged.dictionary_ids
        checks["dictionaries_dropped"] = dictionaries.prune_dictionaries(
            conn, schema=spec.target.schema, table=spec.target.table, keep=keep
        )


def _state_after(plan: RunPlan, staged: Staged, outcome: PublishOutcome, *, run_id: str | None) -> SyncState:
    spec = plan.spec
    published = outcome.published
    run_result = {
        "mode": str(plan.mode),
        "extracted": staged.extract.rows,
        "loaded": staged.load.rows,
        "inserted": published.inserted,
        "updated": published.updated,
        "deleted": published.deleted,
        "watermark_before": plan.since.to_json() if plan.since else None,
    }
    return SyncState(
        table_name=spec.name,
        target_schema=spec.target.schema,
        target_table=spec.target.table,
        mode=str(spec.mode),
        watermark_column=plan.columns.watermark.source_name if plan.columns.watermark else None,
        watermark=outcome.watermark,
        rows_published=outcome.published.inserted + outcome.published.updated,
        run_id=run_id,
        run_result=run_result if run_id is not None else None,
    )
