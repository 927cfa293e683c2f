"""One sync run of one table: extract -> transform -> load -> publish, with the watermark advanced in the same
transaction that publishes the rows. `run_sync` is how the engine (worker, command, benchmark) runs a table;
metadata, key rotation and decryption reach other parts of the core directly.

The stages live beside this module: `bootstrap` (lock, fdm's schemas, the target's state, the source session),
`plan` (a frozen `RunPlan`), `stage` (source batches into a staging table) and `publish`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import psycopg
from snowflake.connector import SnowflakeConnection

from syncengine.pipeline.backfill import BackfillRequest
from syncengine.pipeline.bootstrap import (
    SourceFactory,
    SourceSession,
    TargetState,
    locked_target,
    open_source,
    read_target_state,
)
from syncengine.pipeline.deletes import KeyScan, staged_keys
from syncengine.pipeline.errors import ConfigurationError, RunCancelled
from syncengine.pipeline.extract import SourceTable, describe_source
from syncengine.pipeline.hooks import CancelCheck, Hooks, Log, Progress
from syncengine.pipeline.load import DEFAULT_COPY_STREAMS
from syncengine.pipeline.plan import RunPlan, plan_run, protection_changed
from syncengine.pipeline.protection.compress import Dictionary
from syncengine.pipeline.protection.keyring import Keyring
from syncengine.pipeline.protection.protector import Protector
from syncengine.pipeline.publish import PublishOptions, PublishOutcome, publish_run
from syncengine.pipeline.reconcile.light import check_after_publish
from syncengine.pipeline.result import SyncResult
from syncengine.pipeline.slice_reader import Sessions
from syncengine.pipeline.slices import DEFAULT_SOURCE_CONNECTIONS, SliceLimits, SlicePlan, plan_slices
from syncengine.pipeline.source import SnowflakeSettings
from syncengine.pipeline.source_pool import PooledSource
from syncengine.pipeline.spec import TableSpec
from syncengine.pipeline.stage import SlicedSource, Staged, staging_table, stream_into_staging
from syncengine.pipeline.watermark import SyncState

DEFAULT_PUBLISH_LOCK_TIMEOUT = 30.0


def run_sync(  # noqa: PLR0913 - the engine's public call; every option after `spec` is keyword-only
    spec: TableSpec,
    *,
    source: SnowflakeSettings | SourceFactory | PooledSource,
    target_dsn: str,
    full_refresh: bool = False,
    on_progress: Progress | None = None,
    log: Log | None = None,
    should_cancel: CancelCheck | None = None,
    publish_lock_timeout: float = DEFAULT_PUBLISH_LOCK_TIMEOUT,
    copy_streams: int = DEFAULT_COPY_STREAMS,
    slicing: SliceLimits | None = None,
    keyring: Keyring | None = None,
    run_id: str | None = None,
    allow_deletes: bool = False,
    backfill: BackfillRequest | None = None,
) -> SyncResult:
    """Sync one table and report what happened.

    1. Take the table's advisory lock on the target database (TableBusy when another run holds it).
    2. Make sure fdm's own schemas exist, drop staging tables an interrupted run left, read the watermark and
       the existing target table (`bootstrap`).
    3. Read the source's columns and key and plan the run: loaded columns and their protection, full or
       incremental, drift handling (`plan`).
    4. Stream the source into an UNLOGGED staging table batch by batch: casts, key checks and protection on
       Arrow, then binary COPY. Cancellation is checked between batches (`stage`). With deletes on, an
       incremental run then reads the source's keys alone into a key table (`deletes`).
    5. In one transaction: drift DDL, publish the staged rows, verify the row counts, write the watermark and
       the protection catalog, drop the staging table (`publish`). Any failure before the commit leaves the
       target as it was.

    `keyring` encrypts the table's encrypted columns; a table that encrypts without one is refused.

    `publish_lock_timeout` (seconds) bounds the wait for the target's lock when publishing; running out of it
    is a transient failure, so a long report query delays the sync rather than queueing readers behind it.
    `copy_streams` is how many COPY connections fill the staging table in parallel; `slicing` how many
    Snowflake sessions may read a full load's key-range slices at once, and how large a slice may grow
    (`slices.SliceLimits`; by default two sessions). `run_id` (the caller's
    id for the run) is written into the table's state in the publishing transaction, with the counts it
    published: `watermark.read_run_state` tells later whether this run's data committed; with lineage, it is
    also written on each row. `allow_deletes` lets this one run past the delete guard (`deletes.max_ratio`).
    `backfill` re-extracts an incremental-column range and merges it; the watermark never moves back.
    """
    hooks = Hooks.of(log=log, progress=on_progress, cancelled=should_cancel)
    slicing = _checked_limits(spec, copy_streams, slicing)
    result = SyncResult(table=spec.name, mode=str(spec.mode))
    lap = _stopwatch(result.phases)

    with ExitStack() as cleanup:
        conn = cleanup.enter_context(locked_target(target_dsn, spec.name))
        lap("lock")
        existing = read_target_state(conn, spec, hooks.log)
        lap("target state")
        session = cleanup.enter_context(SourceSession(source, table=spec.name))
        lap("source session")
        run = _Run(spec, source, target_dsn, conn, session, cleanup, hooks, result, lap)
        described, plan = _plan(run, existing, full_refresh=full_refresh, backfill=backfill)
        lap("metadata and plan")
        protector = _protector(plan, keyring, existing)
        _record_plan(result, plan, state=existing.sync_state, log=hooks.log)
        hooks.log("info", "extracting", table=spec.name, mode=result.mode, columns=len(plan.load_columns))

        staged, keys = _stage(run, plan, described, protector, _Reading(copy_streams, slicing))
        session.close()

        if hooks.cancelled():
            raise RunCancelled(f"cancelled before publishing {result.extract.rows} rows", table=spec.name)
        hooks.progress("publish", 0)
        options = PublishOptions(
            lock_timeout=publish_lock_timeout,
            run_id=run_id,
            allow_deletes=allow_deletes,
            key_table=keys.table if keys else None,
        )
        lap("delete scan")
        _publish(run, plan, staged, protector, options)
    return result


@dataclass(frozen=True)
class _Run:
    """What the steps of one run share: the table and where it runs, the target connection that holds the
    table's lock, the source session, the run's cleanups, the caller's hooks, the result the steps fill and
    the stopwatch of its phases."""

    spec: TableSpec
    source: SnowflakeSettings | SourceFactory | PooledSource
    target_dsn: str
    conn: psycopg.Connection
    session: SourceSession
    cleanup: ExitStack
    hooks: Hooks
    result: SyncResult
    lap: Callable[[str], None]


@dataclass(frozen=True)
class _Reading:
    """How a run moves its rows: COPY streams into staging, and the Snowflake sessions a full load's slices
    are read over."""

    copy_streams: int
    slicing: SliceLimits


def _checked_limits(spec: TableSpec, copy_streams: int, slicing: SliceLimits | None) -> SliceLimits:
    """The run's slice limits (two sessions by default), refused before anything is opened when a batch size,
    a stream count or a session count is not positive."""
    if spec.batch_size <= 0:
        raise ConfigurationError("batch_size must be positive", table=spec.name)
    slicing = slicing or SliceLimits(connections=DEFAULT_SOURCE_CONNECTIONS)
    if copy_streams <= 0 or slicing.connections <= 0:
        raise ConfigurationError("copy_streams and source connections must be positive", table=spec.name)
    return slicing


def _plan(
    run: _Run, existing: TargetState, *, full_refresh: bool, backfill: BackfillRequest | None
) -> tuple[SourceTable, RunPlan]:
    """The source's columns and key, and the run's plan from them and what the target holds (`plan`)."""
    spec = run.spec
    described = describe_source(
        run.session.conn, spec.source, table=spec.name, log=run.hooks.log, want_key=not spec.primary_key
    )
    plan = plan_run(
        spec,
        source=described,
        existing=existing,
        full_refresh=full_refresh,
        log=run.hooks.log,
        backfill=backfill,
    )
    return described, plan


def _stage(
    run: _Run, plan: RunPlan, described: SourceTable, protector: Protector | None, reading: _Reading
) -> tuple[Staged, KeyScan | None]:
    """The staging table, the source's rows in it (in key-range slices when the table is large) and, with
    deletes on, the source's keys in a key table; what was staged goes on the result."""
    result, lap, spec = run.result, run.lap, run.spec
    staging = run.cleanup.enter_context(
        staging_table(run.conn, plan, dsn=run.target_dsn, streams=reading.copy_streams, log=run.hooks.log)
    )
    lap("staging table")
    sessions = Sessions(
        first=run.session.conn,
        connect=lambda: open_source(run.source, table=spec.name),
        count=reading.slicing.connections,
    )
    slices = _plan_slices(plan, described, sessions.first, reading.slicing)
    result.checks["extract_slices"] = {**slices.describe(), "connections": reading.slicing.connections}
    lap("plan slices")
    staged = stream_into_staging(
        plan, SlicedSource(sessions, slices), staging=staging, protector=protector, hooks=run.hooks
    )
    lap("rows")
    _record_staged(result, staged, protector)
    _record_evidence(result, plan, described, staged, protector)
    if slices.query_id:
        result.evidence.queries.insert(1, {"purpose": "plan slices", "query_id": slices.query_id})
    keys = run.cleanup.enter_context(
        staged_keys(run.conn, plan, run.session.conn, staging=staging, hooks=run.hooks)
    )
    _record_key_scan(result, plan, keys)
    return staged, keys


def _publish(
    run: _Run, plan: RunPlan, staged: Staged, protector: Protector | None, options: PublishOptions
) -> None:
    """Publish the staged rows (`publish.publish_run`), then check the copy's counts and sums against the
    source, still under the table's lock; the check never fails the published run."""
    outcome = publish_run(run.conn, plan, staged, protector=protector, options=options)
    run.lap("publish")
    _record_published(run.result, outcome, run.hooks)
    run.result.checks["reconciliation"] = check_after_publish(
        plan,
        source=run.source,
        target_conn=run.conn,
        until=outcome.watermark,
        as_of=next(iter(staged.query_ids), None),
        log=run.hooks.log,
    )
    run.lap("check after publish")


def _plan_slices(
    plan: RunPlan, described: SourceTable, conn: SnowflakeConnection, limits: SliceLimits
) -> SlicePlan:
    """A full load of a large table is read in key-range slices over several sessions; an incremental run
    (a delta, usually small) reads in one query."""
    if plan.incremental or plan.backfill is not None:
        return SlicePlan(reason="incremental run")
    key = plan.columns.primary_key
    column = next((column for column in described.columns if key and column.name == key[0]), None)
    return plan_slices(conn, plan.spec.source, column, limits, table=plan.spec.name)


def _stopwatch(phases: dict[str, float]) -> Callable[[str], None]:
    """A function that adds the seconds since its last call (or since this one) to `phases[name]`."""
    last = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        phases[name] = phases.get(name, 0.0) + now - last[0]
        last[0] = now

    return lap


def _protector(plan: RunPlan, keyring: Keyring | None, existing: TargetState) -> Protector | None:
    """Applies the plan's protection; a run that merges into the stored rows (incremental, or a full load with
    history or soft deletes, its protection unchanged) reuses the stored compression dictionaries, so equal
    values compress to equal bytes and unchanged rows stay unchanged."""
    if plan.protection is None:
        return None
    reuse: dict[str, Dictionary] = {}
    if plan.incremental or (plan.merges and not protection_changed(plan.protection, existing.protection)):
        reuse = existing.dictionaries
    return Protector(plan=plan.protection, keyring=keyring, reuse=reuse)


def _record_plan(result: SyncResult, plan: RunPlan, *, state: SyncState | None, log: Log) -> None:
    if plan.backfill is not None:
        result.checks["backfill"] = plan.backfill.describe()
        log("info", "backfilling a range", table=plan.spec.name, **plan.backfill.describe())
    result.drift = list(plan.drift.changes)
    result.target_created = plan.drift.creates_table
    result.mode = str(plan.mode)
    result.watermark_before = state.watermark.to_json() if state and state.watermark else None


def _record_staged(result: SyncResult, staged: Staged, protector: Protector | None) -> None:
    result.extract, result.transform, result.load = staged.extract, staged.transform, staged.load
    result.checks.update(staged.checks)
    result.checks["rows_extracted"] = staged.extract.rows
    if protector is not None:
        result.checks["protection"] = protector.checks()
        result.bytes_before_compression, result.bytes_after_compression = protector.compression_totals()


def _record_key_scan(result: SyncResult, plan: RunPlan, keys: KeyScan | None) -> None:
    if keys is None or plan.key_scan is None:
        return
    result.checks["delete_scan"] = {"keys": keys.rows, "bytes": keys.bytes, "seconds": round(keys.seconds, 3)}
    result.evidence.queries.extend(
        {"purpose": "delete scan", "query_id": query_id, "sql": plan.key_scan.sql, "params": []}
        for query_id in keys.query_ids
    )


def _record_evidence(
    result: SyncResult, plan: RunPlan, described: SourceTable, staged: Staged, protector: Protector | None
) -> None:
    evidence = result.evidence
    evidence.queries.append({"purpose": "describe source", "query_id": described.query_id})
    for query_id in staged.query_ids:
        query, slice_range = staged.queries.get(query_id, (plan.query, None))
        entry: dict[str, Any] = {
            "purpose": "extract",
            "query_id": query_id,
            "sql": query.sql,
            "params": list(query.params),
        }
        if slice_range is not None and not slice_range.whole:
            entry["slice"] = slice_range.describe()
        evidence.queries.append(entry)
    evidence.source_columns = [
        {"name": column.name, "type": column.display_type, "nullable": column.nullable}
        for column in described.columns
    ]
    evidence.target_columns = [
        {
            "name": column.name,
            "type": column.target_type,
            "source": None if column.plan.derived else column.plan.source_name,
        }
        for column in plan.load_columns
    ]
    if protector is not None and protector.keyring is not None and protector.plan.encrypts:
        evidence.key_ids = [protector.keyring.primary]


def _record_published(result: SyncResult, outcome: PublishOutcome, hooks: Hooks) -> None:
    result.checks.update(outcome.checks)
    result.rows_inserted = outcome.published.inserted
    result.rows_updated = outcome.published.updated
    result.rows_deleted = outcome.published.deleted
    result.publish_seconds = outcome.seconds
    result.watermark_after = outcome.watermark.to_json() if outcome.watermark else None
    hooks.progress("publish", result.rows_inserted + result.rows_updated)
    hooks.log(
        "info",
        "published",
        table=result.table,
        mode=result.mode,
        inserted=result.rows_inserted,
        updated=result.rows_updated,
        deleted=result.rows_deleted,
    )
