"""Extract: the source table's metadata and its rows, streamed as Arrow record batches.

Reads use the real Snowflake connector: `fetch_arrow_batches` yields the result chunk by chunk (bounded memory:
never the whole table), timestamps at microsecond precision (PostgreSQL's, and safe for 0001-01-01 or
9999-12-31, which nanoseconds cannot hold), identifiers quoted, values bound with explicit types.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from contextlib import suppress
from dataclasses import dataclass
from queue import Empty, Full, Queue
from typing import Any

import pyarrow as pa
from snowflake.connector import SnowflakeConnection
from snowflake.connector import errors as sf_errors
from snowflake.connector.cursor import SnowflakeCursor

from syncengine.pipeline.errors import SourceSchemaError
from syncengine.pipeline.hooks import Log
from syncengine.pipeline.identifiers import quote_snowflake, snowflake_name
from syncengine.pipeline.schema.columns import TablePlan
from syncengine.pipeline.source import classify_snowflake_error, close_in_background
from syncengine.pipeline.spec import SourceRef
from syncengine.pipeline.typemap import SourceColumn
from syncengine.pipeline.watermark import Watermark


@dataclass(frozen=True)
class SourceTable:
    columns: list[SourceColumn]
    declared_key: tuple[str, ...]
    query_id: str | None = None  # Snowflake's id for the catalog query, for the run's evidence


@dataclass(frozen=True)
class SourceQuery:
    sql: str
    params: tuple[Any, ...] = ()
    filtered: bool = False  # the SQL ends in a WHERE clause (a further condition joins it with AND)


def qualified_source(source: SourceRef) -> str:
    return ".".join(
        quote_snowflake(snowflake_name(part)) for part in (source.database, source.schema, source.table)
    )


def _execute(
    conn: SnowflakeConnection, sql: str, params: tuple[Any, ...] = (), *, table: str
) -> SnowflakeCursor:
    cursor = conn.cursor()
    try:
        # qmark binds are sent to the server with their types, whatever paramstyle the connection was made with.
        # The connector's execute() overloads leave out the _force_qmark_paramstyle that its implementation takes.
        cursor.execute(sql, params or None, _force_qmark_paramstyle=True)  # type: ignore[call-overload]
    except sf_errors.Error as exc:
        close_in_background(cursor.close, what="source cursor")
        raise classify_snowflake_error(exc, table=table) from exc
    return cursor


def describe_source(
    conn: SnowflakeConnection, source: SourceRef, *, table: str, log: Log, want_key: bool
) -> SourceTable:
    """Columns (types, precision, scale, nullability) from INFORMATION_SCHEMA, and the declared primary key."""
    database = quote_snowflake(snowflake_name(source.database))
    cursor = _execute(
        conn,
        "SELECT COLUMN_NAME, DATA_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, CHARACTER_MAXIMUM_LENGTH, IS_NULLABLE "  # noqa: S608
        f"FROM {database}.INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? "
        "ORDER BY ORDINAL_POSITION",
        (snowflake_name(source.schema), snowflake_name(source.table)),
        table=table,
    )
    query_id = cursor.sfqid
    try:
        rows = cursor.fetchall()
    finally:
        cursor.close()
    if not rows:
        raise SourceSchemaError(
            f"source table {qualified_source(source)} does not exist or is not visible to the role",
            table=table,
        )
    columns = [
        SourceColumn(
            name=name,
            data_type=str(data_type).upper(),
            precision=int(precision) if precision is not None else None,
            scale=int(scale) if scale is not None else None,
            length=int(length) if length is not None else None,
            nullable=str(nullable).upper() == "YES",
        )
        for name, data_type, precision, scale, length, nullable in rows
    ]
    declared_key = _declared_primary_key(conn, source, table=table, log=log) if want_key else ()
    return SourceTable(columns=columns, declared_key=declared_key, query_id=query_id)


def _declared_primary_key(
    conn: SnowflakeConnection, source: SourceRef, *, table: str, log: Log
) -> tuple[str, ...]:
    cursor = conn.cursor()
    try:
        cursor.execute(f"SHOW PRIMARY KEYS IN TABLE {qualified_source(source)}")
        names = [column.name.lower() for column in cursor.description or []]
        rows = cursor.fetchall()
    except sf_errors.ProgrammingError as exc:
        # Not every deployment (or emulator) answers SHOW PRIMARY KEYS; the table then counts as keyless.
        log(
            "warning",
            "could not read the source's declared primary key",
            table=table,
            error=str(exc).splitlines()[0],
        )
        return ()
    except sf_errors.Error as exc:
        raise classify_snowflake_error(exc, table=table) from exc
    finally:
        cursor.close()
    if "column_name" not in names:
        return ()
    column_index = names.index("column_name")
    sequence_index = names.index("key_sequence") if "key_sequence" in names else None
    # Keep only rows about this very table (the output names it), whatever scope the server applied.
    wanted = {
        "database_name": snowflake_name(source.database),
        "schema_name": snowflake_name(source.schema),
        "table_name": snowflake_name(source.table),
    }
    checks = [(names.index(field), value) for field, value in wanted.items() if field in names]
    rows = [row for row in rows if all(row[index] == value for index, value in checks)]
    ordered = sorted(rows, key=lambda row: int(row[sequence_index]) if sequence_index is not None else 0)
    return tuple(row[column_index] for row in ordered)


def build_query(
    source: SourceRef, plan: TablePlan, since: Watermark | None, until: Watermark | None = None
) -> SourceQuery:
    """SELECT the planned columns, in plan order; `since` adds the inclusive `cursor >= watermark` filter,
    `until` (a backfill's end) the inclusive `cursor <= until`."""
    columns = ", ".join(quote_snowflake(column.source_name) for column in plan.columns if not column.derived)
    sql = f"SELECT {columns} FROM {qualified_source(source)}"  # noqa: S608 - every identifier is quoted
    if since is None or plan.watermark is None:
        return SourceQuery(sql)
    cursor = quote_snowflake(plan.watermark.source_name)
    condition, params = since.snowflake_filter(cursor, plan.watermark.source)
    if until is not None:
        upper, upper_params = until.snowflake_filter(cursor, plan.watermark.source, operator="<=")
        condition, params = f"{condition} AND {upper}", params + upper_params
    return SourceQuery(f"{sql} WHERE {condition}", params, filtered=True)


def key_query(source: SourceRef, key: tuple[str, ...]) -> SourceQuery:
    """SELECT only the primary key columns (source names) of every row: what a delete scan reads."""
    columns = ", ".join(quote_snowflake(name) for name in key)
    return SourceQuery(f"SELECT {columns} FROM {qualified_source(source)}")  # noqa: S608 - quoted


def stream_batches(
    conn: SnowflakeConnection,
    query: SourceQuery,
    *,
    batch_size: int,
    table: str,
    query_ids: list[str] | None = None,
) -> Generator[pa.RecordBatch, None, None]:
    """Record batches of at most `batch_size` rows, as Snowflake sends its result chunks. Snowflake's id for
    the query is appended to `query_ids` (the run's evidence names the queries it read)."""
    cursor = _execute(conn, query.sql, query.params, table=table)
    if query_ids is not None and cursor.sfqid:
        query_ids.append(cursor.sfqid)
    finished = False
    try:
        chunks = cursor.fetch_arrow_batches(force_microsecond_precision=True)
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                finished = True
                return
            except sf_errors.Error as exc:
                raise classify_snowflake_error(exc, table=table) from exc
            # Slicing is zero-copy: it only bounds how much each later step handles at once.
            yield from chunk.to_batches(max_chunksize=batch_size)
    finally:
        if finished:
            cursor.close()
        else:  # failed or abandoned: the close may wait on a source that is gone
            close_in_background(cursor.close, what="source cursor")


def prefetch(
    batches: Generator[pa.RecordBatch, None, None], *, depth: int = 2
) -> Generator[pa.RecordBatch, None, None]:
    """Read ahead on a background thread so the source's next chunk downloads while this one is loaded.

    At most `depth` batches wait in between, so memory stays bounded. A failure on the reading side is raised
    here; closing this iterator (a cancelled or failed run) stops the reader.
    """
    queue: Queue[pa.RecordBatch | BaseException | None] = Queue(maxsize=depth)  # None: no more batches
    stop = threading.Event()

    def read() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        queue.put(batch, timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put(None)
        except BaseException as exc:  # handed to the consuming thread, which raises it
            queue.put(exc)
        finally:
            with suppress(Exception):
                batches.close()

    reader = threading.Thread(target=read, name="fdm extract", daemon=True)
    reader.start()
    try:
        while True:
            item = queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():
            with suppress(Empty):
                queue.get(timeout=0.1)
        reader.join()
