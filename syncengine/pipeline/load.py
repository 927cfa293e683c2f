"""Staging: an UNLOGGED table in the private `_fdm_staging` schema, filled by binary COPY through the ADBC
PostgreSQL driver.

Why ADBC: it streams Arrow batches as binary COPY from C++, so no value is formatted as text in Python and
bytea, numeric and jsonb arrive exactly; it was the fastest route measured (docs/performance.md). pyarrow's CSV
writer feeding `COPY ... (FORMAT csv)` comes close but cannot write binary columns.

ADBC opens its own connection, so the staging table is a regular table rather than a temporary one. Each run
drops its staging table when it ends, and the next run of the same table drops any that a killed worker left.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from queue import Queue

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as adbc
import psycopg
import pyarrow as pa

from syncengine.pipeline.identifiers import quote_postgres
from syncengine.pipeline.postgres import classify_postgres_error
from syncengine.pipeline.schema.drift import LoadColumn

STAGING_SCHEMA = "_fdm_staging"
DEFAULT_COPY_STREAMS = 2


def staging_prefix(table_name: str) -> str:
    """A readable, collision-free prefix shared by every staging table of one configured table."""
    slug = re.sub(r"[^a-z0-9_]+", "_", table_name.lower()).strip("_")[:30] or "table"
    digest = hashlib.blake2b(table_name.encode(), digest_size=4).hexdigest()
    return f"{slug}_{digest}_"


def new_staging_name(table_name: str) -> str:
    return staging_prefix(table_name) + secrets.token_hex(4)


def drop_leftover_staging(conn: psycopg.Connection, table_name: str) -> list[str]:
    """Drop staging tables of this table that an interrupted run left behind (the caller holds its lock)."""
    prefix = staging_prefix(table_name)
    names = [
        name
        for (name,) in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r' AND left(c.relname, %s) = %s",
            (STAGING_SCHEMA, len(prefix), prefix),
        )
    ]
    for name in names:
        drop_staging(conn, name)
    return names


def create_staging(conn: psycopg.Connection, name: str, columns: Sequence[LoadColumn]) -> None:
    definitions = ", ".join(f"{quote_postgres(column.name)} {column.target_type}" for column in columns)
    conn.execute(
        f"CREATE UNLOGGED TABLE {quote_postgres(STAGING_SCHEMA)}.{quote_postgres(name)} ({definitions})"
    )


def drop_staging(conn: psycopg.Connection, name: str) -> None:
    """CASCADE: a sliced run's staging table takes its slices' tables with it (they inherit from it)."""
    conn.execute(f"DROP TABLE IF EXISTS {quote_postgres(STAGING_SCHEMA)}.{quote_postgres(name)} CASCADE")


@dataclass
class LoadStats:
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0  # how long the run waited on the load (it overlaps with extracting and casting)


_STOP = object()


class StagingWriter:
    """Appends Arrow batches to a staging table over `streams` ADBC connections in parallel.

    Each connection is one COPY stream with its own PostgreSQL backend, so the server parses batches on
    several cores (measured: two streams load 1M rows about 30% faster than one on two cores). Batches wait
    in a queue of `streams` slots, which bounds memory. Each stream commits once, at the end; a failure on
    any stream stops the others and is raised to the caller, whose run then drops the staging table.
    A stream opens when a batch needs it (the second with the second batch): an ADBC connection takes about
    0.15 s to open, which a small table's one batch would not gain back.
    """

    def __init__(
        self, dsn: str, staging_table: str, *, table: str, source_names: Mapping[str, str], streams: int = 1
    ):
        self.staging_table = staging_table
        self.table = table
        self.source_names = source_names
        self.stats = LoadStats()
        # Named like the run's own session, so an operator (or a test) finds a run's COPY backends in
        # pg_stat_activity.
        self._dsn = psycopg.conninfo.make_conninfo(dsn, application_name=f"fdm copy {table}"[:63])
        self._streams = max(streams, 1)
        self._batches = 0
        self._queue: Queue[object] = Queue(maxsize=self._streams)
        self._lock = threading.Lock()
        self._failure: BaseException | None = None
        self._connections: list[adbc.Connection] = []
        self._threads: list[threading.Thread] = []  # set before connecting: close() reads it on failure
        self._open_stream()

    def _open_stream(self) -> None:
        try:
            connection = adbc.connect(self._dsn)
        except adbc_driver_manager.Error as exc:
            self.close()
            raise classify_postgres_error(exc, table=self.table) from exc
        self._connections.append(connection)
        thread = threading.Thread(
            target=self._copy, args=(connection,), name=f"fdm copy {len(self._threads)}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self._failure is None:
                self._failure = exc

    def _copy(self, connection: adbc.Connection) -> None:
        cursor = connection.cursor()
        try:
            # Always drain until told to stop, even after a failure, so the run's thread never blocks on a
            # full queue.
            while (batch := self._queue.get()) is not _STOP:
                if self._failure is not None:
                    continue
                assert isinstance(batch, pa.RecordBatch)
                try:
                    cursor.adbc_ingest(
                        self.staging_table, batch, mode="append", db_schema_name=STAGING_SCHEMA
                    )
                except BaseException as exc:  # handed to the run's thread by write() and commit()
                    self._fail(exc)
                    continue
                with self._lock:
                    self.stats.rows += batch.num_rows
                    self.stats.bytes += batch.nbytes
            if self._failure is None:
                try:
                    connection.commit()
                except BaseException as exc:
                    self._fail(exc)
        finally:
            with suppress(adbc_driver_manager.Error):
                cursor.close()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure = self._failure
            if isinstance(failure, adbc_driver_manager.Error):
                raise classify_postgres_error(
                    failure, table=self.table, source_names=self.source_names
                ) from failure
            raise failure

    def write(self, batch: pa.RecordBatch) -> None:
        self._raise_failure()
        if batch.num_rows == 0:
            return
        self._batches += 1
        if self._batches > len(self._threads) and len(self._threads) < self._streams:
            self._open_stream()
        started = time.perf_counter()
        self._queue.put(batch)
        self.stats.seconds += time.perf_counter() - started

    def commit(self) -> None:
        """Wait for every stream to finish and commit; raise the first failure."""
        started = time.perf_counter()
        self._finish()
        self.stats.seconds += time.perf_counter() - started
        self._raise_failure()

    def _finish(self) -> None:
        for thread in self._threads:
            if thread.is_alive():
                self._queue.put(_STOP)
        for thread in self._threads:
            thread.join()
        self._threads = []

    def close(self) -> None:
        """Stop the streams (rolling back whatever was not committed) and close the connections."""
        if self._threads:
            self._fail(RuntimeError("the load was abandoned"))
        self._finish()
        for connection in self._connections:
            try:
                connection.close()
            except adbc_driver_manager.Error:
                pass  # the connection is being thrown away; a failure to close it changes nothing
        self._connections = []
