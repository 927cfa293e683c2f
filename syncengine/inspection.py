"""Looking at a table's source and target as they are now, for the metadata API.

Opens short-lived sessions with short timeouts (a person or a program is waiting) from the engine's settings
and calls the core's `pipeline.inspect`. Failures come out as the typed errors below, which the API maps to
HTTP statuses: a missing source table is `SourceNotFound`; an unreachable or unconfigured Snowflake is
`SourceUnavailable`; an unreachable target is `TargetUnavailable`. Nothing is cached: the point is to see
the present state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import psycopg
from snowflake.connector import SnowflakeConnection

from syncconfig.models import TableConfig
from syncengine import connections, specs
from syncengine.pipeline import inspect, source_catalog
from syncengine.pipeline.errors import PipelineError, SourceSchemaError
from syncengine.pipeline.extract import describe_source, qualified_source
from syncengine.pipeline.source_check import DEFAULT_SAMPLE_ROWS, Finding, SourceCheck, check_source
from syncengine.pipeline.spec import SourceRef, TableSpec

TIMEOUT_SECONDS = 15
COUNT_TIMEOUT_SECONDS = 60


class InspectionError(Exception):
    """Why a table could not be inspected; the message says it for the person asking."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class SourceNotFound(InspectionError):
    pass


class SourceUnavailable(InspectionError):
    pass


class TargetUnavailable(InspectionError):
    pass


@dataclass(frozen=True)
class Inspected:
    spec: TableSpec
    inspection: inspect.TableInspection


@dataclass(frozen=True)
class RowCounts:
    source_rows: int
    target_rows: int | None  # None: no target table yet


def table_inspect(*, table: TableConfig) -> Inspected:
    """Source columns with their mapped types, the target's columns, and the drift between them."""
    spec = specs.table_spec(table)
    notes: list[str] = []
    with _snowflake_session() as source_conn:
        try:
            source = inspect.describe(source_conn, spec, notes=notes)
        except PipelineError as exc:
            raise _source_error(exc) from None
    with _target_session() as target_conn:
        try:
            target = inspect.describe_target(target_conn, spec)
        except psycopg.Error as exc:
            raise TargetUnavailable(str(exc)) from None
    return Inspected(spec=spec, inspection=inspect.preview(spec, source, target, notes=notes))


def table_row_counts(*, table: TableConfig) -> RowCounts:
    """`COUNT(*)` on both sides (Snowflake answers from metadata; PostgreSQL scans, within a timeout)."""
    spec = specs.table_spec(table)
    with _snowflake_session() as source_conn:
        try:
            source_rows = inspect.count_source_rows(source_conn, spec)
        except PipelineError as exc:
            raise _source_error(exc) from None
    with _target_session() as target_conn:
        try:
            target_rows = inspect.count_target_rows(target_conn, spec)
        except psycopg.Error as exc:
            raise TargetUnavailable(str(exc)) from None
    return RowCounts(source_rows=source_rows, target_rows=target_rows)


def table_check_source(*, table: TableConfig, sample_rows: int = DEFAULT_SAMPLE_ROWS) -> SourceCheck:
    """Check a table's configuration (saved or not) against its Snowflake source before any run.

    A source table that does not exist is a finding of the check; a source that cannot be reached is
    `SourceUnavailable` (nothing could be checked).
    """
    spec = specs.table_spec(table)
    with _snowflake_session() as source_conn:
        try:
            source = inspect.describe(source_conn, spec, notes=[])
        except SourceSchemaError as exc:
            missing = SourceCheck(table=spec.name, source=qualified_source(spec.source))
            missing.findings.append(Finding("source table", False, exc.message, "snowflake.table"))
            return missing
        except PipelineError as exc:
            raise SourceUnavailable(str(exc)) from None
        try:
            return check_source(source_conn, spec, source, sample_rows=sample_rows)
        except PipelineError as exc:
            raise SourceUnavailable(str(exc)) from None


@dataclass(frozen=True)
class SourceColumnChoice:
    """A source column in the browser: its Snowflake type, the PostgreSQL type it loads as (None: fdm cannot
    load it), and whether the source declares it part of the primary key."""

    name: str
    source_type: str
    target_type: str | None
    in_declared_key: bool
    nullable: bool


@dataclass(frozen=True)
class SourceListing:
    """One level of the source browser: the databases, a database's schemas, a schema's tables, or a table's
    columns (the deepest level given)."""

    databases: list[str] = dataclasses.field(default_factory=list)
    schemas: list[str] = dataclasses.field(default_factory=list)
    tables: list[source_catalog.CatalogTable] = dataclasses.field(default_factory=list)
    columns: list[SourceColumnChoice] = dataclasses.field(default_factory=list)


def source_browse(*, database: str = "", schema: str = "", table: str = "") -> SourceListing:
    """What the role sees at one level of Snowflake's catalog: SourceNotFound when the level does not exist,
    SourceUnavailable when Snowflake cannot be reached."""
    with _snowflake_session() as conn:
        try:
            if not database:
                return SourceListing(databases=source_catalog.databases(conn))
            if not schema:
                return SourceListing(schemas=source_catalog.schemas(conn, database))
            if not table:
                return SourceListing(tables=source_catalog.tables(conn, database, schema))
            return SourceListing(columns=_columns(conn, SourceRef(database, schema, table)))
        except PipelineError as exc:
            raise _source_error(exc) from None


def _columns(conn: SnowflakeConnection, source: SourceRef) -> list[SourceColumnChoice]:
    described = describe_source(conn, source, table=source.table, log=_ignore, want_key=True)
    return [
        SourceColumnChoice(
            name=column.name,
            source_type=column.display_type,
            target_type=inspect.mapped_type(column, table=source.table),
            in_declared_key=column.name in described.declared_key,
            nullable=column.nullable,
        )
        for column in described.columns
    ]


def _ignore(level: str, message: str, **fields: object) -> None:
    """A log for catalog reads, whose warnings (no declared key readable) change nothing shown."""


def source_problems(table: TableConfig) -> list[tuple[str | None, str]]:
    """`table_check_source`'s problems as (configuration path, message), for configuration's registry."""
    from syncconfig.source_checks import SourceCheckUnavailable

    try:
        check = table_check_source(table=table)
    except SourceUnavailable as exc:
        raise SourceCheckUnavailable(f"Snowflake: {exc.message}") from None
    return [(finding.path, finding.message) for finding in check.problems]


def _source_error(exc: PipelineError) -> InspectionError:
    if isinstance(exc, SourceSchemaError):
        return SourceNotFound(str(exc))
    return SourceUnavailable(str(exc))


@contextmanager
def _snowflake_session() -> Iterator[SnowflakeConnection]:
    try:
        source = dataclasses.replace(
            connections.snowflake_settings(), login_timeout=TIMEOUT_SECONDS, network_timeout=TIMEOUT_SECONDS
        )
        conn = source.connect()
    except PipelineError as exc:
        raise _source_error(exc) from None
    try:
        yield conn
    finally:
        with suppress(Exception):  # closing a broken session must not hide the answer
            conn.close()


@contextmanager
def _target_session() -> Iterator[psycopg.Connection]:
    try:
        conn = psycopg.connect(connections.target_dsn(), connect_timeout=TIMEOUT_SECONDS, autocommit=True)
    except psycopg.Error as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TargetUnavailable(message) from None
    try:
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{COUNT_TIMEOUT_SECONDS}s",))
        yield conn
    finally:
        conn.close()
