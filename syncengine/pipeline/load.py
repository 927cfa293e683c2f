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
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as adbc
import psycopg
import pyarrow as pa

from syncengine.pipeline.identifiers import quote_postgres
from syncengine.pipeline.postgres import classify_postgres_error
from syncengine.pipeline.schema.drift import LoadColumn

STAGING_SCHEMA = "_fdm_staging"


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
        conn.execute(f"DROP TABLE IF EXISTS {quote_postgres(STAGING_SCHEMA)}.{quote_postgres(name)}")
    return names


def create_staging(conn: psycopg.Connection, name: str, columns: Sequence[LoadColumn]) -> None:
    definitions = ", ".join(f"{quote_postgres(column.name)} {column.target_type}" for column in columns)
    conn.execute(
        f"CREATE UNLOGGED TABLE {quote_postgres(STAGING_SCHEMA)}.{quote_postgres(name)} ({definitions})"
    )


def drop_staging(conn: psycopg.Connection, name: str) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {quote_postgres(STAGING_SCHEMA)}.{quote_postgres(name)}")


@dataclass
class LoadStats:
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0


class StagingWriter:
    """Appends Arrow batches to a staging table over one ADBC connection; commits once at the end."""

    def __init__(self, dsn: str, staging_table: str, *, table: str, source_names: Mapping[str, str]):
        self.staging_table = staging_table
        self.table = table
        self.source_names = source_names
        self.stats = LoadStats()
        try:
            self._conn = adbc.connect(dsn)
        except adbc_driver_manager.Error as exc:
            raise classify_postgres_error(exc, table=table) from exc
        self._cursor = self._conn.cursor()

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        started = time.perf_counter()
        try:
            self._cursor.adbc_ingest(self.staging_table, batch, mode="append", db_schema_name=STAGING_SCHEMA)
        except adbc_driver_manager.Error as exc:
            raise classify_postgres_error(exc, table=self.table, source_names=self.source_names) from exc
        self.stats.seconds += time.perf_counter() - started
        self.stats.rows += batch.num_rows
        self.stats.bytes += batch.nbytes

    def commit(self) -> None:
        started = time.perf_counter()
        try:
            self._conn.commit()
        except adbc_driver_manager.Error as exc:
            raise classify_postgres_error(exc, table=self.table) from exc
        self.stats.seconds += time.perf_counter() - started

    def close(self) -> None:
        for closeable in (self._cursor, self._conn):
            try:
                closeable.close()
            except adbc_driver_manager.Error:
                pass  # the connection is being thrown away; a failure to close it changes nothing
