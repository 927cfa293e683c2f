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
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from syncengine.pipeline import deletes, history, indexes, leases, locks
from syncengine.pipeline.bootstrap import create_schema_if_missing
from syncengine.pipeline.errors import ValidationFailed
from syncengine.pipeline.identifiers import quote_postgres
from syncengine.pipeline.load import STAGING_SCHEMA, drop_staging
from syncengine.pipeline.plan import RunPlan
from syncengine.pipeline.postgres import classify_postgres_error
from syncengine.pipeline.protection import catalog, dictionaries
from syncengine.pipeline.protection.protector import Protector
from syncengine.pipeline.schema.fdm_columns import (
    LINEAGE_VALUES_SQL,
    RUN_ID,
    RUN_ID_SETTING,
    SYNCED_AT,
)
from syncengine.pipeline.schema.target import qualified
from syncengine.pipeline.stage import Staged
from syncengine.pipeline.watermark import SyncState, Watermark, write_state

# How long one attempt to take the target's lock waits (`lock_target`).
LOCK_ATTEMPT_SECONDS = 1.0


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
            outcome.published = _publish_rows(conn, plan, relations, staged, options, outcome.checks)
            outcome.published.deleted += deletes.apply_deletes(
                conn, plan, _delete_scope(relations, options), outcome.checks
            )
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


def _publish_rows(  # noqa: PLR0913 - the transaction's parts, handed on
    conn: psycopg.Connection,
    plan: RunPlan,
    relations: Relations,
    staged: Staged,
    options: PublishOptions,
    checks: dict[str, Any],
) -> Published:
    """Publish in the plan's mode, verifying the counts on both sides; records its checks in `checks`."""
    table = plan.spec.name
    if not plan.spec.history and plan.since is None and (not plan.merges or plan.drift.creates_table):
        return _publish_full(conn, plan, relations, staged, options, checks)
    in_staging = _count_staged(conn, relations, staged, checks, table=table)
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
        checks["rows_unchanged"] = published.unchanged
        return published
    return _publish_slice(conn, plan, relations, in_staging=in_staging)


def _count_staged(
    conn: psycopg.Connection, relations: Relations, staged: Staged, checks: dict[str, Any], *, table: str
) -> int:
    """The staging table's rows, which must be every extracted row."""
    in_staging = count(conn, relations.staging)
    checks["rows_staged"] = in_staging
    if in_staging != staged.extract.rows:
        raise ValidationFailed(f"{staged.extract.rows} rows extracted but {in_staging} staged", table=table)
    return in_staging


def _publish_full(  # noqa: PLR0913 - the transaction's parts, handed on
    conn: psycopg.Connection,
    plan: RunPlan,
    relations: Relations,
    staged: Staged,
    options: PublishOptions,
    checks: dict[str, Any],
) -> Published:
    """A full load. Without repeated keys every staged row is inserted, so the INSERT's row count alone shows
    that staging held every extracted row and the target holds them now; with them, staging is counted first."""
    table = plan.spec.name
    duplicates = int(staged.checks.get("duplicates_resolved", 0) or 0)
    if duplicates:
        _count_staged(conn, relations, staged, checks, table=table)
    if (guarded := deletes.guard_replace(conn, plan, _delete_scope(relations, options))) is not None:
        checks["deletes"] = guarded
    published = publish_full(conn, relations, deduplicate=duplicates > 0)
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
