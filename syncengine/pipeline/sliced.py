"""Sliced runs: one full load split into key ranges that any worker stages, published together.

A sliced run is carried by separate calls, each of which may run in another process on another machine:

1. `start_sliced_run`: under the table's advisory lock, plan the run, split the key into ranges, create the
   run's staging table and one table per slice inheriting from it, and take the table's lease (`leases`).
2. `stage_slice` (once per slice, again after a failure): check the lease, empty the slice's table, read its
   key range from the source and COPY it in, checked and protected like any run; committed when done.
3. `publish_slices`: under the advisory lock, check every slice's table against what its stage reported and
   the key across all slices, then publish the run's staging table (which reads every slice) in the one
   transaction `publish.publish_run` makes, releasing the lease in it.
4. `abandon_sliced_run`: after a terminal failure, drop the staging tables and release the lease.

Only a plain full load is sliced (not incremental runs, history, soft deletes or backfills); `start_sliced_run`
returns None for anything else and the caller runs the table in one process. With compression, each slice
trains and stores its own dictionaries and reports their ids; the publish keeps their union.

Over 400 lines on purpose: the four calls are one protocol between processes. The slice tasks and what a
stage reports, the loaded columns' shape every step checks the source against, the key ranges and the table's
lock are shared by all four; split apart, each part would need the others' internals.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import psycopg
from snowflake.connector import SnowflakeConnection

from syncengine.pipeline import leases, locks
from syncengine.pipeline.bootstrap import SourceFactory, SourceSession, TargetState, read_target_state
from syncengine.pipeline.errors import ConfigurationError, TableBusy, TransientError, ValidationFailed
from syncengine.pipeline.extract import SourceTable, describe_source
from syncengine.pipeline.hooks import Hooks, Log
from syncengine.pipeline.identifiers import quote_postgres
from syncengine.pipeline.load import STAGING_SCHEMA, create_staging, new_staging_name
from syncengine.pipeline.plan import RunPlan, plan_run
from syncengine.pipeline.postgres import classify_postgres_error, connect
from syncengine.pipeline.protection.keyring import Keyring
from syncengine.pipeline.protection.protector import Protector
from syncengine.pipeline.publish import PublishOptions, publish_run
from syncengine.pipeline.reconcile.light import check_after_publish
from syncengine.pipeline.result import StageMetrics, SyncResult
from syncengine.pipeline.schema.target import qualified
from syncengine.pipeline.slice_reader import Sessions
from syncengine.pipeline.slices import SliceLimits, SlicePlan, SliceRange, plan_slices
from syncengine.pipeline.source import SnowflakeSettings
from syncengine.pipeline.spec import TableSpec
from syncengine.pipeline.stage import SlicedSource, Staged, Staging, stream_into_staging
from syncengine.pipeline.typemap import SourceColumn
from syncengine.pipeline.watermark import Watermark

# How long a slice or the publish waits for the table's advisory lock, which the sliced run's own tasks (and
# a run of the table being turned away) hold only for a moment.
LOCK_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class SliceTask:
    """One slice to stage: its number, its key range (`Watermark.to_json()` values; None: open) and its own
    staging table."""

    number: int
    lower: Any
    upper: Any
    staging: str


@dataclass(frozen=True)
class SlicedStart:
    """What `start_sliced_run` set up: the run's staging table, its slices and the loaded columns' shape,
    which every later step checks the source against."""

    staging: str
    slices: tuple[SliceTask, ...]
    columns: tuple[tuple[str, str], ...]


@dataclass
class SliceStaged:
    """What staging one slice produced, as stored between tasks (`to_json` / `from_json`)."""

    number: int
    rows: int = 0
    bytes: int = 0
    loaded_bytes: int = 0
    extract_seconds: float = 0.0
    transform_seconds: float = 0.0
    load_seconds: float = 0.0
    distinct_keys: int = 0
    newest: dict[str, Any] | None = None
    query_ids: list[str] = field(default_factory=list)
    dictionary_ids: list[int] = field(default_factory=list)  # the compression dictionaries its frames use

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SliceStaged:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})


@contextmanager
def _locked(target_dsn: str, table: str, *, wait: float = LOCK_WAIT_SECONDS) -> Iterator[psycopg.Connection]:
    """A connection holding the table's advisory lock, waited for up to `wait` seconds (then transient)."""
    conn = connect(target_dsn, application_name=f"fdm sliced {table}")
    locked = False
    try:
        deadline = time.monotonic() + wait
        while not (locked := locks.try_lock_table(conn, table)):
            if wait <= 0:
                raise TableBusy("another run holds this table", table=table)
            if time.monotonic() > deadline:
                raise TransientError(f"the table's lock stayed taken for {wait:.0f} s", table=table)
            time.sleep(0.2)
        yield conn
    except psycopg.Error as exc:
        raise classify_postgres_error(exc, table=table) from exc
    finally:
        if locked and not conn.closed and not conn.broken:
            with suppress(psycopg.Error):  # closing the session releases it anyway
                locks.unlock_table(conn, table)
        conn.close()


def _plan(
    conn: psycopg.Connection, spec: TableSpec, source_conn: SnowflakeConnection, *, run_id: str, log: Log
) -> tuple[RunPlan, SourceTable, TargetState]:
    existing = read_target_state(conn, spec, log, run_id=run_id)
    described = describe_source(
        source_conn, spec.source, table=spec.name, log=log, want_key=not spec.primary_key
    )
    plan = plan_run(spec, source=described, existing=existing, full_refresh=True, log=log)
    return plan, described, existing


def _shape(plan: RunPlan) -> tuple[tuple[str, str], ...]:
    return tuple((column.name, column.target_type) for column in plan.load_columns)


def sliceable(plan: RunPlan) -> str | None:
    """Why this plan cannot be sliced, or None when it can."""
    if plan.merges or plan.backfill is not None:
        return "only a plain full load is sliced (not incremental runs, history, soft deletes or backfills)"
    if not plan.key:
        return "slices are key ranges, which need a primary key"
    return None


def start_sliced_run(  # noqa: PLR0913 - the start's inputs, keyword-only
    spec: TableSpec,
    *,
    source: SnowflakeSettings | SourceFactory,
    target_dsn: str,
    run_id: str,
    full_refresh: bool,
    log: Log,
) -> SlicedStart | None:
    """Plan the run and set up its slices and the table's lease (steps in the module's docstring); None when
    the run is not a plain full load, which the caller then runs in one process. TableBusy when another run
    holds the table."""
    with ExitStack() as cleanup:
        conn = cleanup.enter_context(_locked(target_dsn, spec.name, wait=0))
        source_session = cleanup.enter_context(SourceSession(source, table=spec.name))
        existing = read_target_state(conn, spec, log)
        described = describe_source(
            source_session.conn, spec.source, table=spec.name, log=log, want_key=not spec.primary_key
        )
        plan = plan_run(spec, source=described, existing=existing, full_refresh=full_refresh, log=log)
        if (reason := sliceable(plan)) is not None:
            log("info", f"not sliced: {reason}", table=spec.name)
            return None
        ranges = _ranges(source_session.conn, plan)
        staging = new_staging_name(spec.name)
        tasks = tuple(
            SliceTask(
                number=i,
                lower=r.low.to_json() if r.low else None,
                upper=r.high.to_json() if r.high else None,
                staging=f"{staging}_s{i}",
            )
            for i, r in enumerate(ranges)
        )
        with conn.transaction():
            create_staging(conn, staging, plan.load_columns)
            for task in tasks:
                conn.execute(
                    f"CREATE UNLOGGED TABLE {qualified(STAGING_SCHEMA, task.staging)} () "
                    f"INHERITS ({qualified(STAGING_SCHEMA, staging)})"
                )
            leases.take_lease(conn, leases.Lease(spec.name, run_id, staging))
        log("info", "sliced", table=spec.name, slices=len(tasks), staging=staging)
        return SlicedStart(staging=staging, slices=tasks, columns=_shape(plan))


def _prepare_slice(conn: psycopg.Connection, spec: TableSpec, task: SliceTask, run_id: str) -> None:
    """Under the table's lock: the run must still hold the lease; a retried slice starts from empty."""
    lease = leases.read_lease(conn, spec.name)
    if lease is None or lease.run_id != run_id:
        raise ConfigurationError(f"sliced run {run_id} no longer holds this table", table=spec.name)
    conn.execute(f"TRUNCATE {qualified(STAGING_SCHEMA, task.staging)}")


def slice_lock_key(table: str, run_id: str, number: int) -> int:
    """The advisory lock a slice's process holds while it stages: the reaper tells a dead slice by it."""
    return locks.table_lock_key(f"{table}\x00run {run_id} slice {number}")


@contextmanager
def _slice_held(target_dsn: str, spec: TableSpec, run_id: str, task: SliceTask) -> Iterator[None]:
    conn = connect(target_dsn, application_name=f"fdm slice {task.number} {spec.name}")
    try:
        row = conn.execute(
            "SELECT pg_try_advisory_lock(%s)", (slice_lock_key(spec.name, run_id, task.number),)
        ).fetchone()
        if not (row and row[0]):
            raise TransientError(f"slice {task.number} is being staged by another process", table=spec.name)
        yield
    finally:
        conn.close()  # ends the session, and the lock with it


def _no_more_sessions(table: str) -> Callable[[], SnowflakeConnection]:
    def connect() -> SnowflakeConnection:
        raise ConfigurationError("a slice task reads its range on one session", table=table)

    return connect


def stage_slice(  # noqa: PLR0913 - a slice's inputs, keyword-only
    spec: TableSpec,
    task: SliceTask,
    *,
    source: SnowflakeSettings | SourceFactory,
    target_dsn: str,
    run_id: str,
    columns: tuple[tuple[str, str], ...],
    keyring: Keyring | None,
    hooks: Hooks,
    copy_streams: int = 1,
) -> SliceStaged:
    """Stage one slice into its own table, committed when done: what it staged, for the publish step."""
    with ExitStack() as cleanup:
        cleanup.enter_context(_slice_held(target_dsn, spec, run_id, task))
        source_session = cleanup.enter_context(SourceSession(source, table=spec.name))
        with _locked(target_dsn, spec.name) as conn:  # only while checking the lease and emptying the slice
            plan, _, _ = _plan(conn, spec, source_session.conn, run_id=run_id, log=hooks.log)
            _check_shape(plan, columns)
            _prepare_slice(conn, spec, task, run_id)
        protector = Protector(plan=plan.protection, keyring=keyring) if plan.protection else None
        # One key range, read on this task's own session.
        reads = SlicedSource(Sessions(first=source_session.conn, connect=_no_more_sessions(spec.name)))
        reads = dataclasses.replace(reads, slices=SlicePlan(ranges=(_slice_range(plan, task),)))
        staged = stream_into_staging(
            plan,
            reads,
            staging=Staging(dsn=target_dsn, table=task.staging, streams=copy_streams),
            protector=protector,
            hooks=hooks,
        )
    return SliceStaged(
        number=task.number,
        rows=staged.extract.rows,
        bytes=staged.extract.bytes,
        loaded_bytes=staged.load.bytes,
        extract_seconds=staged.extract.seconds,
        transform_seconds=staged.transform.seconds,
        load_seconds=staged.load.seconds,
        distinct_keys=int(staged.checks.get("distinct_keys", staged.extract.rows) or 0),
        newest=staged.newest.to_json() if staged.newest else None,
        query_ids=list(staged.query_ids),
        dictionary_ids=sorted(staged.dictionary_ids),
    )


def _key_column(plan: RunPlan) -> SourceColumn:
    """The column slices split: the key's first (rows sharing its value stay in one slice)."""
    return plan.columns.by_source(plan.columns.primary_key[0]).source


def _ranges(conn: SnowflakeConnection, plan: RunPlan) -> tuple[SliceRange, ...]:
    """`parallel.slices` ranges of the key's first column between its MIN and MAX (`slices.plan_slices`);
    fewer when its span is narrower, one when it cannot be split (a text key)."""
    count = plan.spec.slices
    limits = SliceLimits(connections=count, min_rows=1, max_rows=2**62, max_slices=count)
    planned = plan_slices(conn, plan.spec.source, _key_column(plan), limits, table=plan.spec.name)
    return planned.ranges


def _slice_range(plan: RunPlan, task: SliceTask) -> SliceRange:
    low = Watermark.from_json(task.lower) if task.lower is not None else None
    high = Watermark.from_json(task.upper) if task.upper is not None else None
    return SliceRange(index=task.number, column=_key_column(plan), low=low, high=high)


def _check_shape(plan: RunPlan, columns: tuple[tuple[str, str], ...]) -> None:
    if _shape(plan) != tuple(tuple(column) for column in columns):
        raise ConfigurationError(
            "the source's columns changed while the sliced run was under way; the next run loads them",
            table=plan.spec.name,
        )


def _check_slices(
    conn: psycopg.Connection, plan: RunPlan, start: SlicedStart, done: list[SliceStaged]
) -> None:
    """Each slice's table holds what its stage reported, and no key is in two slices."""
    table = plan.spec.name
    reported = {item.number: item.rows for item in done}
    for task in start.slices:
        row = conn.execute(f"SELECT count(*) FROM ONLY {qualified(STAGING_SCHEMA, task.staging)}").fetchone()  # noqa: S608
        held = int(row[0]) if row else 0
        if task.number not in reported or held != reported[task.number]:
            raise ValidationFailed(
                f"slice {task.number} staged {reported.get(task.number)} rows but its table holds {held}",
                table=table,
            )
    key = ", ".join(quote_postgres(name) for name in plan.key)
    duplicates = conn.execute(
        f"SELECT {key} FROM {qualified(STAGING_SCHEMA, start.staging)} "  # noqa: S608 - identifiers quoted
        f"GROUP BY {key} HAVING count(*) > 1 LIMIT 5"
    ).fetchall()
    if duplicates:
        examples = ", ".join(str(row[0]) for row in duplicates)
        raise ValidationFailed(
            f"primary key value(s) staged by more than one slice, e.g. {examples}", table=table
        )


def _combined(plan: RunPlan, start: SlicedStart, done: list[SliceStaged]) -> Staged:
    """The slices' staging as one `Staged`: the run's staging table reads every slice's rows."""
    staged = Staged(table=start.staging)
    staged.extract = StageMetrics(
        rows=sum(item.rows for item in done),
        bytes=sum(item.bytes for item in done),
        seconds=sum(item.extract_seconds for item in done),
    )
    staged.transform = StageMetrics(rows=staged.extract.rows, seconds=sum(i.transform_seconds for i in done))
    staged.load = StageMetrics(
        rows=staged.extract.rows,
        bytes=sum(item.loaded_bytes for item in done),
        seconds=sum(item.load_seconds for item in done),
    )
    for item in done:
        if item.newest is not None:
            staged.newest = Watermark.from_json(item.newest).later(staged.newest)
        staged.query_ids.extend(item.query_ids)
        staged.dictionary_ids.update(item.dictionary_ids)
    staged.checks = {
        "rows_checked": staged.extract.rows,
        "primary_key_not_null": True,
        "distinct_keys": sum(item.distinct_keys for item in done),
        "primary_key_unique": True,
        "duplicates_resolved": 0,
        "slices": len(done),
    }
    return staged


def publish_slices(  # noqa: PLR0913 - the publish step's inputs, keyword-only
    spec: TableSpec,
    start: SlicedStart,
    done: list[SliceStaged],
    *,
    source: SnowflakeSettings | SourceFactory,
    target_dsn: str,
    run_id: str,
    keyring: Keyring | None,
    lock_timeout: float,
    log: Log,
) -> SyncResult:
    """Publish every slice in one transaction (`publish.publish_run`), the lease released with the data."""
    result = SyncResult(table=spec.name, mode="full")
    with ExitStack() as cleanup:
        conn = cleanup.enter_context(_locked(target_dsn, spec.name))
        source_session = cleanup.enter_context(SourceSession(source, table=spec.name))
        plan, _, existing = _plan(conn, spec, source_session.conn, run_id=run_id, log=log)
        source_session.close()
        _check_shape(plan, start.columns)
        try:
            _check_slices(conn, plan, start, done)
        except psycopg.Error as exc:
            raise classify_postgres_error(exc, table=spec.name) from exc
        staged = _combined(plan, start, done)
        protector = Protector(plan=plan.protection, keyring=keyring) if plan.protection else None
        options = PublishOptions(lock_timeout=lock_timeout, run_id=run_id, release_lease=True)
        outcome = publish_run(conn, plan, staged, protector=protector, options=options)
        _record(result, plan, existing, staged, outcome)
        result.checks["reconciliation"] = check_after_publish(
            plan, source=source, target_conn=conn, until=outcome.watermark, as_of=None, log=log
        )
    log("info", "published", table=spec.name, inserted=result.rows_inserted, deleted=result.rows_deleted)
    return result


def _record(result: SyncResult, plan: RunPlan, existing: TargetState, staged: Staged, outcome: Any) -> None:
    result.drift = list(plan.drift.changes)
    result.target_created = plan.drift.creates_table
    state = existing.sync_state
    result.watermark_before = state.watermark.to_json() if state and state.watermark else None
    result.extract, result.transform, result.load = staged.extract, staged.transform, staged.load
    result.checks.update(staged.checks)
    result.checks["rows_extracted"] = staged.extract.rows
    result.checks.update(outcome.checks)
    result.rows_inserted = outcome.published.inserted
    result.rows_updated = outcome.published.updated
    result.rows_deleted = outcome.published.deleted
    result.publish_seconds = outcome.seconds
    result.watermark_after = outcome.watermark.to_json() if outcome.watermark else None
    result.evidence.queries.extend(
        {"purpose": "extract slice", "query_id": query_id} for query_id in staged.query_ids
    )


def abandon_sliced_run(target_dsn: str, table: str, run_id: str) -> str | None:
    """Drop a failed sliced run's staging tables and release its lease; the staging table's name, or None
    when the run held no lease (already released)."""
    with _locked(target_dsn, table) as conn, conn.transaction():
        if conn.execute("SELECT to_regclass(%s) IS NULL", (leases.LEASES,)).fetchone() == (True,):
            return None
        lease = leases.read_lease(conn, table)
        if lease is None or lease.run_id != run_id:
            return None
        conn.execute(f"DROP TABLE IF EXISTS {qualified(STAGING_SCHEMA, lease.staging)} CASCADE")
        leases.release_lease(conn, table, run_id)
        return lease.staging
