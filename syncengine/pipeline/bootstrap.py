"""What a run sets up before it plans: the table's lock, fdm's own schemas, what the target database remembers
about the table, and the source session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import psycopg
from snowflake.connector import SnowflakeConnection
from snowflake.connector import errors as sf_errors

from syncengine.pipeline import leases, locks
from syncengine.pipeline.errors import TableBusy
from syncengine.pipeline.hooks import Log
from syncengine.pipeline.identifiers import quote_postgres
from syncengine.pipeline.load import STAGING_SCHEMA, drop_leftover_staging
from syncengine.pipeline.postgres import classify_postgres_error, connect
from syncengine.pipeline.protection import catalog, dictionaries
from syncengine.pipeline.protection.compress import Dictionary
from syncengine.pipeline.schema.target import TargetTable, inspect_target, qualified
from syncengine.pipeline.source import SnowflakeSettings, classify_snowflake_error, close_in_background
from syncengine.pipeline.source_pool import PooledSource
from syncengine.pipeline.spec import TableSpec
from syncengine.pipeline.watermark import (
    STATE_SCHEMA,
    STATE_TABLE,
    STATE_TABLE_CURRENT_SQL,
    STATE_TABLE_UPGRADE_SQL,
    SyncState,
    read_state,
    state_table_sql,
)

SourceFactory = Callable[[], SnowflakeConnection]


@dataclass(frozen=True)
class TargetState:
    """What the target database holds for a table before this run: its watermark, the table itself, how its
    columns are protected, and the compression dictionaries an incremental run may reuse."""

    sync_state: SyncState | None
    table: TargetTable | None
    protection: catalog.CatalogTable | None
    dictionaries: dict[str, Dictionary]


@contextmanager
def locked_target(target_dsn: str, table: str) -> Iterator[psycopg.Connection]:
    """A connection to the target that holds the table's advisory lock (TableBusy when another run does)."""
    conn = connect(target_dsn, application_name=f"fdm sync {table}")
    locked = False
    try:
        try:
            locked = locks.try_lock_table(conn, table)
        except psycopg.Error as exc:
            raise classify_postgres_error(exc, table=table) from exc
        if not locked:
            raise TableBusy("another run holds this table", table=table)
        yield conn
    finally:
        if locked and not conn.closed:
            with suppress(psycopg.Error):
                locks.unlock_table(conn, table)
        conn.close()


def read_target_state(
    conn: psycopg.Connection, spec: TableSpec, log: Log, *, run_id: str | None = None
) -> TargetState:
    """Create fdm's schemas if needed, drop staging tables an interrupted run left, and read the table's state.

    Call under the table's advisory lock. A sliced run that holds the table's lease (`leases`) makes any other
    run TableBusy; the sliced run's own tasks (`run_id` holds the lease) keep its staging tables.
    """
    try:
        ensure_schemas(conn)
        own_lease = leases.check_free(conn, spec.name, run_id)
        for leftover in [] if own_lease else drop_leftover_staging(conn, spec.name):
            log(
                "info",
                "dropped a staging table left by an interrupted run",
                table=spec.name,
                staging=leftover,
            )
        return TargetState(
            sync_state=read_state(conn, spec.name),
            table=inspect_target(conn, spec.target.schema, spec.target.table),
            protection=catalog.read_catalog(conn, spec.target.schema, spec.target.table),
            dictionaries=dictionaries.latest_dictionaries(
                conn, schema=spec.target.schema, table=spec.target.table
            ),
        )
    except psycopg.Error as exc:
        raise classify_postgres_error(exc, table=spec.name) from exc


def ensure_schemas(conn: psycopg.Connection) -> None:
    """Create fdm's schemas and state tables once, and bring older ones to their current shape (the protection
    catalog and the dictionaries keyed by target table); a lock keeps concurrent runs from racing."""
    row = conn.execute(
        "SELECT to_regnamespace(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL "
        f"AND to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL AND {catalog.catalog_current_sql()} "
        f"AND {dictionaries.dictionaries_current_sql()}",
        (
            quote_postgres(STAGING_SCHEMA),
            qualified(STATE_SCHEMA, STATE_TABLE),
            catalog.CATALOG,
            dictionaries.DICTIONARIES_TABLE,
            leases.LEASES,
        ),
    ).fetchone()
    if row and row[0] and conn.execute(STATE_TABLE_CURRENT_SQL).fetchone() == (True,):
        return
    with conn.transaction():
        locks.lock_bootstrap(conn)
        for schema in (STATE_SCHEMA, STAGING_SCHEMA):
            create_schema_if_missing(conn, schema)
        conn.execute(state_table_sql())
        conn.execute(STATE_TABLE_UPGRADE_SQL)
        conn.execute(catalog.catalog_table_sql())
        conn.execute(dictionaries.dictionaries_table_sql())
        conn.execute(leases.leases_table_sql())
        dictionaries.upgrade_dictionaries(conn, catalog=catalog.CATALOG)  # reads the catalog's old names
        catalog.upgrade_catalog(conn)


def create_schema_if_missing(conn: psycopg.Connection, schema: str) -> None:
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


class SourceSession:
    """The run's Snowflake session; closed as soon as the rows are staged, before publishing. A session drawn
    from a pool (`source_pool.PooledSource`) goes back to it when the run is done with it cleanly."""

    def __init__(self, source: SnowflakeSettings | SourceFactory | PooledSource, *, table: str):
        self._source = source
        self.conn: SnowflakeConnection = open_source(source, table=table)
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if isinstance(self._source, PooledSource):
                self._source.release(self.conn)
                return
            with suppress(Exception):
                self.conn.close()

    def __enter__(self) -> SourceSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        if exc_type is None or self._closed:
            self.close()
        else:  # a failing run: its error is known, and a dead source would hold up the close
            self._closed = True
            close_in_background(self.conn.close, what="source session")


def open_source(
    source: SnowflakeSettings | SourceFactory | PooledSource, *, table: str
) -> SnowflakeConnection:
    """A session from the run's settings, factory or pool (the run's own, and each further slice reader's)."""
    if isinstance(source, SnowflakeSettings):
        return source.connect()
    if isinstance(source, PooledSource):
        return source.open()
    try:
        conn = source()
    except sf_errors.Error as exc:
        raise classify_snowflake_error(exc, table=table) from exc
    if not conn.arrow_number_to_decimal:
        # Scaled NUMBERs would arrive as float64 otherwise; the connector names its setter this way.
        conn.arrow_number_to_decimal_setter = True
    return conn
