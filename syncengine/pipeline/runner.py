"""One sync run of one table: extract -> transform -> load -> publish, with the watermark advanced in the same
transaction that publishes the rows. This is the only entry point the Django side calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from snowflake.connector import SnowflakeConnection
from snowflake.connector import errors as sf_errors

from syncengine.pipeline import locks, publish
from syncengine.pipeline.errors import (
    ConfigurationError,
    PipelineError,
    RunCancelled,
    TableBusy,
    ValidationFailed,
)
from syncengine.pipeline.extract import SourceQuery, build_query, describe_source, prefetch, stream_batches
from syncengine.pipeline.identifiers import quote_postgres
from syncengine.pipeline.load import (
    DEFAULT_COPY_STREAMS,
    STAGING_SCHEMA,
    StagingWriter,
    create_staging,
    drop_leftover_staging,
    drop_staging,
    new_staging_name,
)
from syncengine.pipeline.postgres import classify_postgres_error, connect
from syncengine.pipeline.protection import catalog, dictionaries
from syncengine.pipeline.protection.compress import Dictionary
from syncengine.pipeline.protection.keyring import Keyring
from syncengine.pipeline.protection.plan import ProtectionPlan, plan_protection
from syncengine.pipeline.protection.protector import ColumnStats, Protector
from syncengine.pipeline.result import SyncResult
from syncengine.pipeline.schema.columns import TablePlan, plan_columns
from syncengine.pipeline.schema.drift import DriftPlan, LoadColumn, plan_drift
from syncengine.pipeline.schema.target import TargetTable, inspect_target, qualified
from syncengine.pipeline.source import SnowflakeSettings, classify_snowflake_error
from syncengine.pipeline.spec import SyncMode, TableSpec
from syncengine.pipeline.transform.casts import cast_batch
from syncengine.pipeline.transform.protect import protect_batch
from syncengine.pipeline.transform.validate import KeyCheck
from syncengine.pipeline.watermark import (
    STATE_SCHEMA,
    STATE_TABLE,
    SyncState,
    Watermark,
    kind_for,
    read_state,
    state_table_sql,
    write_state,
)

Progress = Callable[[str, int], None]
Log = Callable[..., None]
SourceFactory = Callable[[], SnowflakeConnection]

DEFAULT_PUBLISH_LOCK_TIMEOUT = 30.0


def _no_log(level: str, message: str, **fields: object) -> None:
    return None


def run_sync(
    spec: TableSpec,
    *,
    source: SnowflakeSettings | SourceFactory,
    target_dsn: str,
    full_refresh: bool = False,
    on_progress: Progress | None = None,
    log: Log | None = None,
    should_cancel: Callable[[], bool] | None = None,
    publish_lock_timeout: float = DEFAULT_PUBLISH_LOCK_TIMEOUT,
    copy_streams: int = DEFAULT_COPY_STREAMS,
    keyring: Keyring | None = None,
) -> SyncResult:
    """Sync one table and report what happened.

    1. Take the table's advisory lock on the target database (TableBusy when another run holds it).
    2. Make sure fdm's own schemas exist, drop staging tables an interrupted run left, read the watermark and
       the existing target table.
    3. Read the source's columns and key; plan the loaded columns and their protection (encryption, blind
       indexes, compression); decide the mode (incremental needs a watermark for the same column, an existing
       target and unchanged column protection); plan the drift handling.
    4. Stream the source into an UNLOGGED staging table batch by batch: casts, key checks and protection on
       Arrow, then binary COPY. Cancellation is checked between batches.
    5. In one transaction: drift DDL, publish the staged rows, verify the row counts, write the watermark and
       the protection catalog, drop the staging table. Any failure before the commit leaves the target as it
       was.

    `keyring` encrypts the table's encrypted columns; a table that encrypts without one is refused.

    `publish_lock_timeout` (seconds) bounds the wait for the target's lock when publishing; running out of it
    is a transient failure, so a long report query delays the sync rather than queueing readers behind it.
    `copy_streams` is how many COPY connections fill the staging table in parallel.
    """
    log = log or _no_log
    progress = on_progress or (lambda stage, rows: None)
    cancelled = should_cancel or (lambda: False)
    result = SyncResult(table=spec.name, mode=str(spec.mode))
    if spec.batch_size <= 0:
        raise ConfigurationError("batch_size must be positive", table=spec.name)
    if copy_streams <= 0:
        raise ConfigurationError("copy_streams must be positive", table=spec.name)

    conn = connect(target_dsn, application_name=f"fdm sync {spec.name}")
    staging: str | None = None
    locked = False
    source_conn: SnowflakeConnection | None = None
    try:
        try:
            locked = locks.try_lock_table(conn, spec.name)
        except psycopg.Error as exc:
            raise classify_postgres_error(exc, table=spec.name) from exc
        if not locked:
            raise TableBusy("another run holds this table", table=spec.name)

        try:
            _bootstrap(conn)
            for leftover in drop_leftover_staging(conn, spec.name):
                log(
                    "info",
                    "dropped a staging table left by an interrupted run",
                    table=spec.name,
                    staging=leftover,
                )
            state = read_state(conn, spec.name)
            target = inspect_target(conn, spec.target.schema, spec.target.table)
            stored_protection = catalog.read_catalog(conn, spec.name)
            reusable = dictionaries.latest_dictionaries(conn, spec.name)
        except psycopg.Error as exc:
            raise classify_postgres_error(exc, table=spec.name) from exc

        source_conn = _open_source(source, table=spec.name)
        described = describe_source(
            source_conn, spec.source, table=spec.name, log=log, want_key=not spec.primary_key
        )
        plan = plan_columns(spec, described.columns, described.declared_key)
        plan, protection = plan_protection(spec, plan)
        since = _usable_watermark(spec, plan, state, target, full_refresh=full_refresh, log=log)
        if since is not None and _protection_changed(protection, stored_protection):
            log("warning", "column protection changed; loading in full", table=spec.name)
            since = None
        incremental = since is not None
        protector = (
            Protector(plan=protection, keyring=keyring, reuse=reusable if incremental else {})
            if protection
            else None
        )
        drift = plan_drift(spec, plan, target, full_load=not incremental)
        result.drift = list(drift.changes)
        result.target_created = drift.creates_table
        for change in drift.changes:
            log("warning", "schema drift", table=spec.name, change=change)
        result.mode = str(SyncMode.INCREMENTAL if incremental else SyncMode.FULL)
        result.watermark_before = state.watermark.to_json() if state and state.watermark else None
        key = plan.target_primary_key
        if incremental and key and target is not None and not target.has_unique_key(key):
            raise ConfigurationError(
                f"the target table has no primary key or unique index on ({', '.join(key)}), which incremental "
                "loading needs",
                table=spec.name,
            )
        loaded_plan = TablePlan(
            columns=tuple(column.plan for column in drift.load_columns),
            primary_key=plan.primary_key,
            watermark=plan.watermark,
        )
        query = build_query(spec.source, loaded_plan, since)
        log("info", "extracting", table=spec.name, mode=result.mode, columns=len(drift.load_columns))

        staging = new_staging_name(spec.name)
        try:
            create_staging(conn, staging, drift.load_columns)
        except psycopg.Error as exc:
            raise classify_postgres_error(exc, table=spec.name) from exc
        checks = KeyCheck(
            table=spec.name,
            key=key,
            watermark=plan.watermark.target_name if plan.watermark else None,
            duplicates_allowed=spec.mode == SyncMode.INCREMENTAL,
        )
        newest = _stream_into_staging(
            spec,
            source_conn=source_conn,
            query=query,
            plan=plan,
            drift=drift,
            protector=protector,
            checks=checks,
            target_dsn=target_dsn,
            staging=staging,
            copy_streams=copy_streams,
            result=result,
            progress=progress,
            cancelled=cancelled,
        )
        result.checks.update(checks.finish())
        result.checks["rows_extracted"] = result.rows_extracted
        if protector is not None:
            result.checks["protection"] = protector.checks()
            compressed = _compressed_stats(protector)
            result.bytes_before_compression = sum(stats.bytes_plain for stats in compressed)
            result.bytes_after_compression = sum(stats.bytes_compressed for stats in compressed)
        _close_source(source_conn)
        source_conn = None

        if cancelled():
            raise RunCancelled(f"cancelled before publishing {result.rows_extracted} rows", table=spec.name)
        watermark_after = (newest.later(since) if newest else since) if incremental else newest
        _publish(
            conn, spec, plan, drift, protector, staging, since, watermark_after, result, publish_lock_timeout
        )
        staging = None
        result.watermark_after = watermark_after.to_json() if watermark_after else None
        progress("publish", result.rows_inserted + result.rows_updated)
        log(
            "info",
            "published",
            table=spec.name,
            mode=result.mode,
            inserted=result.rows_inserted,
            updated=result.rows_updated,
            deleted=result.rows_deleted,
        )
        return result
    finally:
        if source_conn is not None:
            _close_source(source_conn)
        if staging is not None:
            _drop_staging_after_failure(conn, target_dsn, staging, spec.name, log)
        if locked and not conn.closed:
            with suppress(psycopg.Error):
                locks.unlock_table(conn, spec.name)
        conn.close()


def _bootstrap(conn: psycopg.Connection) -> None:
    """Create fdm's schemas and state table once; a lock keeps concurrent first runs from racing."""
    row = conn.execute(
        "SELECT to_regnamespace(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL "
        "AND to_regclass(%s) IS NOT NULL",
        (
            quote_postgres(STAGING_SCHEMA),
            qualified(STATE_SCHEMA, STATE_TABLE),
            catalog.CATALOG,
            dictionaries.DICTIONARIES_TABLE,
        ),
    ).fetchone()
    if row and row[0]:
        return
    with conn.transaction():
        locks.lock_bootstrap(conn)
        for schema in (STATE_SCHEMA, STAGING_SCHEMA):
            _create_schema_if_missing(conn, schema)
        conn.execute(state_table_sql())
        conn.execute(catalog.catalog_table_sql())
        conn.execute(dictionaries.dictionaries_table_sql())


def _create_schema_if_missing(conn: psycopg.Connection, schema: str) -> None:
    """Call under the bootstrap lock. Checked first because CREATE SCHEMA IF NOT EXISTS still needs CREATE on
    the database. The check reads pg_namespace with the statement's own snapshot: catalog caches such as
    to_regnamespace() may not yet show a schema another run committed while this one waited for the lock
    (an advisory lock does not refresh them), and CREATE SCHEMA would then fail on the duplicate.
    """
    row = conn.execute(
        "SELECT NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)", (schema,)
    ).fetchone()
    if row and row[0]:
        conn.execute(f"CREATE SCHEMA {quote_postgres(schema)}")


def _open_source(source: SnowflakeSettings | SourceFactory, *, table: str) -> SnowflakeConnection:
    if isinstance(source, SnowflakeSettings):
        return source.connect()
    try:
        conn = source()
    except sf_errors.Error as exc:
        raise classify_snowflake_error(exc, table=table) from exc
    if not conn.arrow_number_to_decimal:
        # Scaled NUMBERs would arrive as float64 otherwise; the connector names its setter this way.
        conn.arrow_number_to_decimal_setter = True
    return conn


def _close_source(conn: SnowflakeConnection) -> None:
    with suppress(Exception):
        conn.close()


def _usable_watermark(
    spec: TableSpec,
    plan: TablePlan,
    state: SyncState | None,
    target: TargetTable | None,
    *,
    full_refresh: bool,
    log: Log,
) -> Watermark | None:
    """The watermark an incremental run starts from, or None for a full load.

    A stored watermark only counts for the same incremental column and the same, existing target table:
    otherwise rows below it would never be loaded.
    """
    if spec.mode != SyncMode.INCREMENTAL or plan.watermark is None or full_refresh:
        return None
    if state is None or state.watermark is None:
        return None
    if state.watermark_column != plan.watermark.source_name:
        log("warning", "incremental column changed; loading in full", table=spec.name)
        return None
    if (state.target_schema, state.target_table) != (spec.target.schema, spec.target.table) or target is None:
        log("warning", "target table is new or moved; loading in full", table=spec.name)
        return None
    if state.watermark.kind != kind_for(plan.watermark.source):
        log("warning", "incremental column changed type; loading in full", table=spec.name)
        return None
    return state.watermark


def _stream_into_staging(
    spec: TableSpec,
    *,
    source_conn: SnowflakeConnection,
    query: SourceQuery,
    plan: TablePlan,
    drift: DriftPlan,
    protector: Protector | None,
    checks: KeyCheck,
    target_dsn: str,
    staging: str,
    copy_streams: int,
    result: SyncResult,
    progress: Progress,
    cancelled: Callable[[], bool],
) -> Watermark | None:
    """Extract, transform, check and COPY every batch; return the newest incremental-column value seen."""
    watermark_name = plan.watermark.target_name if plan.watermark else None
    kind = kind_for(plan.watermark.source) if plan.watermark else None
    source_names = {column.name: column.plan.source_name for column in drift.load_columns}
    read_columns = [column for column in drift.load_columns if not column.plan.derived]
    load_order = [column.name for column in drift.load_columns]
    plain_wires = protector.plan.plain_wires(plan) if protector else None
    if protector is not None:
        protector.save_dictionary = _dictionary_saver(target_dsn, spec.name)
    newest: Watermark | None = None
    writer = StagingWriter(
        target_dsn, staging, table=spec.name, source_names=source_names, streams=copy_streams
    )
    # The next source chunk downloads while this one is cast and copied.
    batches = prefetch(stream_batches(source_conn, query, batch_size=spec.batch_size, table=spec.name))
    try:
        while True:
            started = time.perf_counter()
            batch = next(batches, None)
            result.extract.seconds += time.perf_counter() - started
            if batch is None:
                break
            if cancelled():
                raise RunCancelled(f"cancelled after {result.rows_extracted} rows", table=spec.name)
            result.rows_extracted += batch.num_rows
            result.bytes_extracted += batch.nbytes
            progress("extract", result.rows_extracted)

            started = time.perf_counter()
            staged = cast_batch(
                _in_load_order(batch, read_columns), read_columns, table=spec.name, wires=plain_wires
            )
            checks.observe(staged)
            if watermark_name is not None and kind is not None:
                # One value per batch: the running maximum needs no per-row Python.
                highest = pc.max(staged.column(watermark_name)).as_py()
                if highest is not None:
                    newest = Watermark.of(kind, highest).later(newest)
            if protector is not None:
                staged = protect_batch(staged, protector, load_order)
            result.transform.seconds += time.perf_counter() - started

            writer.write(staged)
            progress("load", writer.stats.rows)
        writer.commit()
    finally:
        batches.close()
        writer.close()
    result.extract.rows = result.rows_extracted
    result.extract.bytes = result.bytes_extracted
    result.transform.rows = checks.rows
    result.load.rows = writer.stats.rows
    result.load.bytes = writer.stats.bytes
    result.load.seconds = writer.stats.seconds
    result.rows_loaded = writer.stats.rows
    result.bytes_loaded = writer.stats.bytes
    return newest


def _protection_changed(protection: ProtectionPlan | None, stored: catalog.CatalogTable | None) -> bool:
    """Would this run store some column differently from the rows already in the target?"""
    if protection is None:
        return stored is not None
    return stored is None or stored.signature() != protection.signature()


def _compressed_stats(protector: Protector) -> list[ColumnStats]:
    return [protector.stats[column.target_name] for column in protector.plan.columns if column.compressed]


def _dictionary_saver(target_dsn: str, table_name: str) -> Callable[[str, Dictionary], None]:
    """Stores a trained dictionary at once, in its own transaction: frames that use it must stay readable even
    if a later step of this run fails and a later run reuses nothing of it."""

    def save(column: str, dictionary: Dictionary) -> None:
        try:
            with connect(target_dsn, application_name=f"fdm dictionary {table_name}") as conn:
                dictionaries.save_dictionary(conn, table=table_name, column=column, dictionary=dictionary)
        except psycopg.Error as exc:
            raise classify_postgres_error(exc, table=table_name, source_names={}) from exc

    return save


def _in_load_order(batch: pa.RecordBatch, columns: list[LoadColumn]) -> pa.RecordBatch:
    names = [column.plan.source_name for column in columns]
    if batch.schema.names == names:
        return batch
    return batch.select(names)


def _publish(
    conn: psycopg.Connection,
    spec: TableSpec,
    plan: TablePlan,
    drift: DriftPlan,
    protector: Protector | None,
    staging: str,
    since: Watermark | None,
    watermark_after: Watermark | None,
    result: SyncResult,
    lock_timeout: float,
) -> None:
    """Step 5 of run_sync: one transaction that publishes and advances the watermark."""
    target = qualified(spec.target.schema, spec.target.table)
    staging_table = qualified(STAGING_SCHEMA, staging)
    columns = [column.name for column in drift.load_columns]
    key = list(plan.target_primary_key)
    watermark_name = plan.watermark.target_name if plan.watermark else None
    source_names = {column.name: column.plan.source_name for column in drift.load_columns}
    started = time.perf_counter()
    try:
        with conn.transaction():
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{int(lock_timeout * 1000)}ms",))
            if drift.creates_table:
                locks.lock_bootstrap(conn)
                _create_schema_if_missing(conn, spec.target.schema)
            for statement in drift.ddl:
                conn.execute(statement)

            staged = publish.count(conn, staging_table)
            result.checks["rows_staged"] = staged
            if staged != result.rows_extracted:
                raise ValidationFailed(
                    f"{result.rows_extracted} rows extracted but {staged} staged", table=spec.name
                )
            duplicates = int(result.checks.get("duplicates_resolved", 0) or 0)
            expected = staged - duplicates
            if since is None:
                published = publish.publish_full(
                    conn,
                    target=target,
                    staging=staging_table,
                    columns=columns,
                    key=key,
                    watermark=watermark_name,
                    deduplicate=duplicates > 0,
                )
                in_target = publish.count(conn, target)
                if published.inserted != expected or in_target != expected:
                    raise ValidationFailed(
                        f"{expected} rows staged but {published.inserted} inserted and {in_target} in the target",
                        table=spec.name,
                    )
            elif key:
                distinct = int(result.checks.get("distinct_keys", expected) or 0)
                published = publish.publish_upsert(
                    conn,
                    target=target,
                    staging=staging_table,
                    columns=columns,
                    key=key,
                    watermark=watermark_name,
                    distinct_keys=distinct,
                )
                missing = publish.keys_missing_after_upsert(
                    conn, target=target, staging=staging_table, key=key
                )
                if missing or published.unchanged < 0:
                    raise ValidationFailed(
                        f"{distinct} keys staged but {missing} missing from the target after publishing",
                        table=spec.name,
                    )
                result.checks["rows_unchanged"] = published.unchanged
            else:
                assert watermark_name is not None
                published = publish.publish_replace_slice(
                    conn,
                    target=target,
                    staging=staging_table,
                    columns=columns,
                    watermark=watermark_name,
                    since=since.value,
                )
                if published.inserted != staged:
                    raise ValidationFailed(
                        f"{staged} rows staged but {published.inserted} inserted", table=spec.name
                    )
            for statement in drift.finish_ddl:
                conn.execute(statement)
            protection = protector.plan if protector else None
            if protection is not None:
                for statement in catalog.blind_index_ddl(spec.target.schema, spec.target.table, protection):
                    conn.execute(statement)
            catalog.write_catalog(
                conn,
                table_name=spec.name,
                schema=spec.target.schema,
                table=spec.target.table,
                plan=protection,
            )
            if since is None:
                dropped = dictionaries.prune_dictionaries(
                    conn, spec.name, keep=protector.dictionary_ids if protector else set()
                )
                result.checks["dictionaries_dropped"] = dropped
            result.rows_inserted = published.inserted
            result.rows_updated = published.updated
            result.rows_deleted = published.deleted
            result.checks["rows_published"] = published.inserted + published.updated + published.unchanged
            result.checks["row_counts_match"] = True

            write_state(
                conn,
                table_name=spec.name,
                target_schema=spec.target.schema,
                target_table=spec.target.table,
                mode=str(spec.mode),
                watermark_column=plan.watermark.source_name if plan.watermark else None,
                watermark=watermark_after,
                rows_published=published.inserted + published.updated,
            )
            drop_staging(conn, staging)
    except psycopg.Error as exc:
        raise classify_postgres_error(exc, table=spec.name, source_names=source_names) from exc
    result.publish_seconds = time.perf_counter() - started


def _drop_staging_after_failure(
    conn: psycopg.Connection, dsn: str, staging: str, table: str, log: Log
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
    log(
        "warning",
        "could not drop the staging table; the next run of this table drops it",
        table=table,
        staging=staging,
    )
