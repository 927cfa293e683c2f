"""Staging: every source batch is cast, checked and protected on Arrow, then copied into an UNLOGGED staging
table. Nothing here touches the target table; `publish` moves the staged rows in one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from syncengine.pipeline.errors import PipelineError, RunCancelled
from syncengine.pipeline.extract import SourceQuery
from syncengine.pipeline.hooks import Hooks, Log
from syncengine.pipeline.load import StagingWriter, create_staging, drop_staging, new_staging_name
from syncengine.pipeline.plan import RunPlan
from syncengine.pipeline.postgres import classify_postgres_error, connect
from syncengine.pipeline.protection import dictionaries
from syncengine.pipeline.protection.compress import Dictionary
from syncengine.pipeline.protection.protector import Protector
from syncengine.pipeline.result import StageMetrics
from syncengine.pipeline.schema.drift import LoadColumn
from syncengine.pipeline.slice_reader import Sessions, SliceQueries, read_slices
from syncengine.pipeline.slices import SlicePlan, SliceRange, sliced_query
from syncengine.pipeline.spec import SyncMode, TableSpec
from syncengine.pipeline.transform.casts import cast_batch
from syncengine.pipeline.transform.protect import protect_batch
from syncengine.pipeline.transform.validate import KeyCheck, dense_range
from syncengine.pipeline.watermark import Watermark, kind_for


@dataclass(frozen=True)
class Staging:
    """Where a run stages its rows: the target database, the staging table's name and how many COPY streams
    fill it in parallel."""

    dsn: str
    table: str
    streams: int


@dataclass
class Staged:
    """What staging produced: per-stage metrics, the key checks, and the newest incremental-column value."""

    table: str
    extract: StageMetrics = field(default_factory=StageMetrics)
    transform: StageMetrics = field(default_factory=StageMetrics)
    load: StageMetrics = field(default_factory=StageMetrics)
    checks: dict[str, Any] = field(default_factory=dict)
    newest: Watermark | None = None
    query_ids: list[str] = field(default_factory=list)  # Snowflake's ids for the queries that read the rows
    # Each of those queries, by id, with the key-range slice it read (the evidence names both).
    queries: dict[str, tuple[SourceQuery, SliceRange]] = field(default_factory=dict)
    # The compression dictionaries the staged frames use: a full load's publish drops every other one.
    dictionary_ids: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class SlicedSource:
    """Where staging reads from: the Snowflake sessions it may use, and the key-range slices of the read (one
    slice, the whole table, unless the run planned more)."""

    sessions: Sessions
    slices: SlicePlan = field(default_factory=SlicePlan)


@contextmanager
def staging_table(
    conn: psycopg.Connection, plan: RunPlan, *, dsn: str, streams: int, log: Log
) -> Iterator[Staging]:
    """Create the run's staging table, and drop it again if the run fails before publishing (which drops it)."""
    table = plan.spec.name
    name = new_staging_name(table)
    try:
        try:
            create_staging(conn, name, plan.load_columns)
        except psycopg.Error as exc:
            raise classify_postgres_error(exc, table=table) from exc
        yield Staging(dsn=dsn, table=name, streams=streams)
    except BaseException:
        drop_staging_after_failure(conn, dsn=dsn, staging=name, table=table, log=log)
        raise


def stream_into_staging(
    plan: RunPlan,
    source: SlicedSource,
    *,
    staging: Staging,
    protector: Protector | None,
    hooks: Hooks,
) -> Staged:
    """Extract, transform, check and COPY every batch. The slices are read concurrently, each on a session of
    its own (`slice_reader`); every batch is transformed, checked and counted here, on the run's thread.
    Cancellation is checked between batches."""
    table = plan.spec.name
    staged = Staged(table=staging.table)
    checks = KeyCheck(
        table=table,
        key=plan.key,
        watermark=plan.watermark_name,
        duplicates_allowed=plan.spec.mode == SyncMode.INCREMENTAL,
        key_range=dense_range(source.slices.low, source.slices.high, source.slices.rows),
    )
    transform = BatchTransform(plan, protector, checks)
    if protector is not None:
        protector.save_dictionary = _dictionary_saver(staging.dsn, plan.spec)
    source_names = {column.name: column.plan.source_name for column in plan.load_columns}
    writer = StagingWriter(
        staging.dsn, staging.table, table=table, source_names=source_names, streams=staging.streams
    )
    # The next source chunks download (on the readers' threads) while this one is cast and copied.
    queries = [sliced_query(plan.query, slice_range) for slice_range in source.slices.ranges]
    reads = SliceQueries(queries, plan.spec.batch_size, table, query_ids=[[] for _ in queries])
    batches = read_slices(reads, source.sessions)
    try:
        for batch in _timed(batches, staged.extract):
            if hooks.cancelled():
                raise RunCancelled(f"cancelled after {staged.extract.rows} rows", table=table)
            staged.extract.rows += batch.num_rows
            staged.extract.bytes += transform.clear_bytes(batch)
            hooks.progress("extract", staged.extract.rows)
            started = time.perf_counter()
            ready = transform(batch)
            staged.transform.seconds += time.perf_counter() - started
            writer.write(ready)
            hooks.progress("load", writer.stats.rows)
        writer.commit()
    finally:
        batches.close()
        writer.close()
    for slice_range, query, ids in zip(source.slices.ranges, queries, reads.query_ids, strict=True):
        staged.query_ids.extend(ids)
        staged.queries.update((query_id, (query, slice_range)) for query_id in ids)
    staged.transform.rows = checks.rows
    staged.load = StageMetrics(rows=writer.stats.rows, bytes=writer.stats.bytes, seconds=writer.stats.seconds)
    staged.newest = transform.newest
    staged.checks = dict(checks.finish())
    staged.dictionary_ids = protector.dictionary_ids if protector is not None else set()
    staged.extract.bytes += transform.encrypted_bytes()
    return staged


class BatchTransform:
    """Turns a source batch into the staged one: load order, casts, key checks, protection; and keeps the
    newest incremental-column value seen."""

    def __init__(self, plan: RunPlan, protector: Protector | None, checks: KeyCheck):
        self.table = plan.spec.name
        self.protector = protector
        self.checks = checks
        self.watermark_name = plan.watermark_name
        self.kind = kind_for(plan.columns.watermark.source) if plan.columns.watermark else None
        self.read_columns = [column for column in plan.load_columns if not column.plan.derived]
        self.load_order = [column.name for column in plan.load_columns]
        self.plain_wires = protector.plan.plain_wires(plan.columns) if protector else None
        self.newest: Watermark | None = None
        protected = protector.plan.columns if protector else ()
        self.encrypted = [
            (column.source_name, column.target_name) for column in protected if column.encrypted
        ]

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        staged = cast_batch(
            _in_load_order(batch, self.read_columns),
            self.read_columns,
            table=self.table,
            wires=self.plain_wires,
        )
        self.checks.observe(staged)
        if self.watermark_name is not None and self.kind is not None:
            # One value per batch: the running maximum needs no per-row Python.
            highest = pc.max(staged.column(self.watermark_name)).as_py()
            if highest is not None:
                self.newest = Watermark.of(self.kind, highest).later(self.newest)
        if self.protector is not None:
            staged = protect_batch(staged, self.protector, self.load_order)
        return staged

    def clear_bytes(self, batch: pa.RecordBatch) -> int:
        """The bytes read of a source batch, but for its encrypted columns: their plaintext sizes would tell
        the lengths of their values to anyone who can read a run record (`encrypted_bytes` counts them)."""
        return batch.nbytes - sum(batch.column(source).nbytes for source, _ in self.encrypted)

    def encrypted_bytes(self) -> int:
        """What the encrypted columns store (envelopes: what anyone with the database sees), once every batch is
        encrypted; counted into the run's bytes read in place of their plaintexts."""
        if self.protector is None:
            return 0
        return sum(self.protector.stats[target].bytes_stored for _, target in self.encrypted)


def _timed(batches: Generator[pa.RecordBatch, None, None], metrics: StageMetrics) -> Iterator[pa.RecordBatch]:
    """The batches, with the time spent waiting for each added to `metrics.seconds`."""
    while True:
        started = time.perf_counter()
        batch = next(batches, None)
        metrics.seconds += time.perf_counter() - started
        if batch is None:
            return
        yield batch


def _in_load_order(batch: pa.RecordBatch, columns: list[LoadColumn]) -> pa.RecordBatch:
    names = [column.plan.source_name for column in columns]
    if batch.schema.names == names:
        return batch
    return batch.select(names)


def _dictionary_saver(target_dsn: str, spec: TableSpec) -> Callable[[str, Dictionary], None]:
    """Stores a trained dictionary at once, in its own transaction: frames that use it must stay readable even
    if a later step of this run fails and a later run reuses nothing of it."""
    table_name = spec.name

    def save(column: str, dictionary: Dictionary) -> None:
        try:
            with connect(target_dsn, application_name=f"fdm dictionary {table_name}") as conn:
                dictionaries.save_dictionary(
                    conn,
                    table_name=table_name,
                    schema=spec.target.schema,
                    table=spec.target.table,
                    column=column,
                    dictionary=dictionary,
                )
        except psycopg.Error as exc:
            raise classify_postgres_error(exc, table=table_name, source_names={}) from exc

    return save


def drop_staging_after_failure(
    conn: psycopg.Connection, *, dsn: str, staging: str, table: str, log: Log
) -> None:
    """Best effort: on the run's connection, else a fresh one; the next run drops anything still left."""
    for attempt in ("run connection", "new connection"):
        try:
            if attempt == "run connection":
                if conn.closed or conn.broken:
                    continue
                drop_staging(conn, staging)
            else:
                with connect(dsn, application_name=f"fdm cleanup {table}") as fresh:
                    drop_staging(fresh, staging)
            return
        except (psycopg.Error, PipelineError):
            continue
    # The run is already failing: a caller's log that fails too (its own database gone) must not replace the
    # run's error with its own.
    with suppress(Exception):
        log(
            "warning",
            "could not drop the staging table; the next run of this table or the reaper drops it",
            table=table,
            staging=staging,
        )
