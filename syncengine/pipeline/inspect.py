"""Inspection: what the source and the target look like now, how the source's types map, and what the next run
would do about their differences. Read-only; the metadata API reaches it through `syncengine.inspection`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from snowflake.connector import SnowflakeConnection

from syncengine.pipeline.errors import PipelineError, SchemaDriftError, SourceSchemaError
from syncengine.pipeline.extract import SourceTable, describe_source, qualified_source
from syncengine.pipeline.protection.plan import plan_protection
from syncengine.pipeline.schema.columns import ColumnPlan, plan_columns
from syncengine.pipeline.schema.drift import diff_columns, plan_drift
from syncengine.pipeline.schema.target import TargetTable, inspect_target, qualified
from syncengine.pipeline.source import classify_snowflake_error
from syncengine.pipeline.spec import TableSpec
from syncengine.pipeline.typemap import SourceColumn, postgres_type_for

# The Snowflake types fdm maps, with the precision and scale shown for NUMBER.
MAPPED_TYPES = (
    "NUMBER",
    "FLOAT",
    "BOOLEAN",
    "DATE",
    "TIME",
    "TIMESTAMP_NTZ",
    "TIMESTAMP_TZ",
    "TIMESTAMP_LTZ",
    "VARIANT",
    "OBJECT",
    "ARRAY",
    "BINARY",
    "TEXT",
)


@dataclass(frozen=True)
class RetypedColumn:
    column: str
    source_type: str
    needs: str
    target_type: str


@dataclass
class DriftPreview:
    """How the planned columns differ from the target, and what the next run would do about it."""

    added: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    changed: list[RetypedColumn] = field(default_factory=list)
    in_sync: bool | None = None  # None: no target yet
    outcome: list[str] = field(default_factory=list)


@dataclass
class TableInspection:
    source: SourceTable
    target: TargetTable | None
    planned: dict[str, ColumnPlan]  # loaded columns by source name
    drift: DriftPreview
    plan_error: str | None = None  # why a run could not plan its columns
    notes: list[str] = field(default_factory=list)


def describe(conn: SnowflakeConnection, spec: TableSpec, *, notes: list[str]) -> SourceTable:
    """The source's columns and declared key; warnings go to `notes`."""

    def log(level: str, message: str, **fields: object) -> None:
        notes.append(message)

    return describe_source(conn, spec.source, table=spec.name, log=log, want_key=True)


def describe_target(conn: psycopg.Connection, spec: TableSpec) -> TargetTable | None:
    return inspect_target(conn, spec.target.schema, spec.target.table)


def preview(
    spec: TableSpec, source: SourceTable, target: TargetTable | None, *, notes: list[str]
) -> TableInspection:
    """Plan the columns as a run would (include/exclude, names, types, then encryption and compression),
    compare them with the target, and ask the drift policy what a run would do."""
    inspection = TableInspection(source=source, target=target, planned={}, drift=DriftPreview(), notes=notes)
    try:
        plan = plan_columns(spec, source.columns, source.declared_key)
        try:
            plan, _ = plan_protection(spec, plan)  # protected columns are stored as bytea
        except PipelineError as exc:
            notes.append(
                str(exc)
            )  # a protection setting a run would refuse: the plain plan still tells drift
        inspection.planned = {column.source_name: column for column in plan.columns}
        if target is not None:
            diff = diff_columns(plan.columns, {column.name: column.type for column in target.columns})
            inspection.drift.added = [column.target_name for column in diff.added]
            inspection.drift.dropped = list(diff.dropped)
            inspection.drift.changed = [
                RetypedColumn(c.target_name, c.source.display_type, c.target_type, existing_type)
                for c, existing_type in diff.retyped
            ]
            inspection.drift.in_sync = diff.in_sync
        try:
            drift_plan = plan_drift(spec, plan, target)
            inspection.drift.outcome = (
                ["the target does not exist yet; the next run creates it"]
                if drift_plan.creates_table
                else list(drift_plan.changes)
            )
        except SchemaDriftError as exc:
            inspection.drift.outcome = [f"the next run would stop: {exc.message}"]
    except PipelineError as exc:
        inspection.plan_error = str(exc)
    return inspection


def mapped_type(column: SourceColumn, *, table: str) -> str | None:
    """The PostgreSQL type a source column loads as, or None for a type fdm does not load."""
    try:
        return postgres_type_for(column, table=table)
    except SourceSchemaError:
        return None  # the drift report says so


def type_mapping() -> list[tuple[str, str]]:
    """(Snowflake type, PostgreSQL type) for every type fdm maps."""
    mapping = []
    for data_type in MAPPED_TYPES:
        if data_type == "NUMBER":
            mapping.append(("NUMBER(p,s)", "numeric(p,s)"))
            continue
        mapping.append(
            (data_type, postgres_type_for(SourceColumn(name="column", data_type=data_type), table=""))
        )
    return mapping


def count_source_rows(conn: SnowflakeConnection, spec: TableSpec) -> int:
    """`COUNT(*)` of the source table (Snowflake answers from metadata); errors come classified."""
    cursor = conn.cursor()
    try:
        cursor.execute(f"SELECT COUNT(*) FROM {qualified_source(spec.source)}")  # noqa: S608 - quoted names
        row = cursor.fetchone()
    except PipelineError:
        raise
    except Exception as exc:
        raise classify_snowflake_error(exc, table=spec.name) from exc
    finally:
        cursor.close()
    return int(row[0]) if row else 0


def count_target_rows(conn: psycopg.Connection, spec: TableSpec) -> int | None:
    """`count(*)` of the target table (a scan: bound it with a statement timeout), None when it does not exist."""
    name = qualified(spec.target.schema, spec.target.table)
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    if not (exists and exists[0]):
        return None
    counted = conn.execute(f"SELECT count(*) FROM {name}").fetchone()  # noqa: S608 - quoted names
    return int(counted[0]) if counted else 0
