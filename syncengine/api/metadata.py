"""Metadata endpoints: /api/v1/metadata/. What the source and the target look like now, how the types map,
how they drift apart, and how many rows each side holds.

These read Snowflake and the target database on every request (nothing is cached: the point is to see the
present state). An unreachable Snowflake or target, or missing settings, answers 503 with the reason; a source
table that does not exist answers 404. The pipeline's modules are imported inside the functions, so that web
processes that never call these do not load the Snowflake connector and pyarrow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from fdm.api.errors import ApiError, unavailable
from fdm.api.permissions import IsViewer
from fdm.api.schema import error_response
from fdm.api.views import ApiView
from syncconfig import selectors as config_selectors
from syncconfig.models import TableConfig
from syncengine import connections, specs

if TYPE_CHECKING:
    from snowflake.connector import SnowflakeConnection

TAGS = ["metadata"]
TIMEOUT_SECONDS = 15
COUNT_TIMEOUT_SECONDS = 60
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
UNAVAILABLE = error_response("Snowflake or the target database cannot be reached, or is not configured.")


def _table_or_404(name: str) -> TableConfig:
    try:
        return config_selectors.table_get(name=name)
    except TableConfig.DoesNotExist:
        raise NotFound(f"No table named {name!r}.") from None


def _source_error(exc: Exception) -> ApiError:
    from syncengine.pipeline.errors import SourceSchemaError

    if isinstance(exc, SourceSchemaError):
        return ApiError(str(exc), code="source_not_found", status_code=404)
    return unavailable(f"Snowflake: {exc}", code="snowflake_unavailable")


@contextmanager
def snowflake_session() -> Iterator[SnowflakeConnection]:
    """A Snowflake session with short timeouts (a person or a program is waiting); 503 when impossible."""
    from syncengine.pipeline.errors import PipelineError

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
        try:
            conn.close()
        except Exception:  # closing a broken session must not hide the answer
            pass


@contextmanager
def target_session() -> Iterator[psycopg.Connection]:
    try:
        conn = psycopg.connect(connections.target_dsn(), connect_timeout=TIMEOUT_SECONDS, autocommit=True)
    except psycopg.Error as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise unavailable(f"target database: {message}", code="target_unavailable") from None
    try:
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{COUNT_TIMEOUT_SECONDS}s",))
        yield conn
    finally:
        conn.close()


def _mapped(column: Any, *, table: str) -> str | None:
    from syncengine.pipeline.errors import SourceSchemaError
    from syncengine.pipeline.typemap import postgres_type_for

    try:
        return postgres_type_for(column, table=table)
    except SourceSchemaError:
        return None  # a type fdm does not load; the drift report says so


def table_metadata(table: TableConfig) -> dict[str, Any]:
    """Source columns with their mapped types, the target's columns, and the drift between them.

    1. Describe the source (INFORMATION_SCHEMA and the declared key) and inspect the target's catalog.
    2. Plan the loaded columns as a run would (include/exclude, names, types, then encryption and compression).
    3. Compare with the target: new, dropped and retyped columns; then ask the drift policy what a run would do.
    """
    from syncengine.pipeline.errors import PipelineError, SchemaDriftError
    from syncengine.pipeline.extract import describe_source
    from syncengine.pipeline.protection.plan import plan_protection
    from syncengine.pipeline.schema.columns import plan_columns
    from syncengine.pipeline.schema.drift import plan_drift
    from syncengine.pipeline.schema.target import inspect_target
    from syncengine.pipeline.typemap import holds

    spec = specs.table_spec(table)
    log_lines: list[str] = []

    def log(level: str, message: str, **fields: object) -> None:
        log_lines.append(message)

    with snowflake_session() as source_conn:
        try:
            described = describe_source(source_conn, spec.source, table=spec.name, log=log, want_key=True)
        except PipelineError as exc:
            raise _source_error(exc) from None
    with target_session() as target_conn:
        try:
            target = inspect_target(target_conn, spec.target.schema, spec.target.table)
        except psycopg.Error as exc:
            raise unavailable(f"target database: {exc}", code="target_unavailable") from None

    plan_error = None
    planned: dict[str, Any] = {}
    drift: dict[str, Any] = {"added": [], "dropped": [], "changed": [], "in_sync": None, "outcome": []}
    try:
        plan = plan_columns(spec, described.columns, described.declared_key)
        try:
            plan, _ = plan_protection(spec, plan)  # protected columns are stored as bytea
        except PipelineError as exc:
            log_lines.append(
                str(exc)
            )  # a protection setting a run would refuse: the plain plan still tells drift
        planned = {column.source_name: column for column in plan.columns}
        if target is not None:
            existing = {column.name: column.type for column in target.columns}
            names = {column.target_name for column in plan.columns}
            drift["added"] = [c.target_name for c in plan.columns if c.target_name not in existing]
            drift["dropped"] = [c.name for c in target.columns if c.name not in names]
            drift["changed"] = [
                {
                    "column": c.target_name,
                    "source_type": c.source.display_type,
                    "needs": c.target_type,
                    "target_type": existing[c.target_name],
                }
                for c in plan.columns
                if c.target_name in existing and not holds(existing[c.target_name], c.target_type)
            ]
            drift["in_sync"] = not (drift["added"] or drift["dropped"] or drift["changed"])
        try:
            drift_plan = plan_drift(spec, plan, target)
            drift["outcome"] = (
                ["the target does not exist yet; the next run creates it"]
                if drift_plan.creates_table
                else list(drift_plan.changes)
            )
        except SchemaDriftError as exc:
            drift["outcome"] = [f"the next run would stop: {exc.message}"]
    except PipelineError as exc:
        plan_error = str(exc)

    return {
        "table": table.name,
        "source": {
            "database": spec.source.database,
            "schema": spec.source.schema,
            "table": spec.source.table,
            "declared_primary_key": list(described.declared_key),
            "columns": [
                {
                    "name": column.name,
                    "type": column.display_type,
                    "data_type": column.data_type,
                    "precision": column.precision,
                    "scale": column.scale,
                    "length": column.length,
                    "nullable": column.nullable,
                    "postgres_type": _mapped(column, table=spec.name),
                    "loaded": column.name in planned,
                    "target_name": planned[column.name].target_name if column.name in planned else None,
                    "target_type": planned[column.name].target_type if column.name in planned else None,
                }
                for column in described.columns
            ],
        },
        "target": {
            "schema": spec.target.schema,
            "table": spec.target.table,
            "exists": target is not None,
            "columns": [
                {"name": column.name, "type": column.type, "not_null": column.not_null}
                for column in (target.columns if target is not None else ())
            ],
            "primary_key": list(target.primary_key) if target is not None else [],
        },
        "drift": {**drift, "policy": spec.drift_policy.value},
        "plan_error": plan_error,
        "notes": log_lines,
    }


def row_counts(table: TableConfig) -> dict[str, Any]:
    """`COUNT(*)` on both sides (Snowflake answers from metadata; PostgreSQL scans, within a timeout)."""
    from syncengine.pipeline.errors import PipelineError
    from syncengine.pipeline.extract import qualified_source
    from syncengine.pipeline.schema.target import qualified
    from syncengine.pipeline.source import classify_snowflake_error

    spec = specs.table_spec(table)
    with snowflake_session() as source_conn:
        cursor = source_conn.cursor()
        try:
            cursor.execute(f"SELECT COUNT(*) FROM {qualified_source(spec.source)}")  # noqa: S608 - quoted names
            row = cursor.fetchone()
        except Exception as exc:
            error = (
                classify_snowflake_error(exc, table=spec.name) if not isinstance(exc, PipelineError) else exc
            )
            raise _source_error(error) from None
        finally:
            cursor.close()
        source_rows = int(row[0]) if row else 0
    with target_session() as target_conn:
        name = qualified(spec.target.schema, spec.target.table)
        try:
            exists = target_conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
            target_rows = None
            if exists and exists[0]:
                counted = target_conn.execute(f"SELECT count(*) FROM {name}").fetchone()  # noqa: S608
                target_rows = int(counted[0]) if counted else 0
        except psycopg.Error as exc:
            raise unavailable(f"target database: {exc}", code="target_unavailable") from None
    return {
        "table": table.name,
        "source_rows": source_rows,
        "target_rows": target_rows,
        "difference": source_rows - target_rows if target_rows is not None else None,
    }


_COLUMN = inline_serializer(
    "SourceColumn",
    {
        "name": serializers.CharField(),
        "type": serializers.CharField(),
        "data_type": serializers.CharField(),
        "precision": serializers.IntegerField(allow_null=True),
        "scale": serializers.IntegerField(allow_null=True),
        "length": serializers.IntegerField(allow_null=True),
        "nullable": serializers.BooleanField(),
        "postgres_type": serializers.CharField(allow_null=True, help_text="null: a type fdm cannot load"),
        "loaded": serializers.BooleanField(help_text="Whether runs load this column (include/exclude)."),
        "target_name": serializers.CharField(allow_null=True),
        "target_type": serializers.CharField(allow_null=True, help_text="After column transforms."),
    },
    many=True,
)
_METADATA = inline_serializer(
    "TableMetadata",
    {
        "table": serializers.CharField(),
        "source": inline_serializer(
            "SourceTable",
            {
                "database": serializers.CharField(),
                "schema": serializers.CharField(),
                "table": serializers.CharField(),
                "declared_primary_key": serializers.ListField(child=serializers.CharField()),
                "columns": _COLUMN,
            },
        ),
        "target": inline_serializer(
            "TargetTable",
            {
                "schema": serializers.CharField(),
                "table": serializers.CharField(),
                "exists": serializers.BooleanField(),
                "columns": inline_serializer(
                    "TargetColumn",
                    {
                        "name": serializers.CharField(),
                        "type": serializers.CharField(),
                        "not_null": serializers.BooleanField(),
                    },
                    many=True,
                ),
                "primary_key": serializers.ListField(child=serializers.CharField()),
            },
        ),
        "drift": inline_serializer(
            "Drift",
            {
                "added": serializers.ListField(child=serializers.CharField()),
                "dropped": serializers.ListField(child=serializers.CharField()),
                "changed": serializers.ListField(child=serializers.DictField()),
                "in_sync": serializers.BooleanField(allow_null=True, help_text="null: no target yet"),
                "outcome": serializers.ListField(
                    child=serializers.CharField(), help_text="What the next run does."
                ),
                "policy": serializers.CharField(),
            },
        ),
        "plan_error": serializers.CharField(
            allow_null=True, help_text="Why a run could not plan its columns."
        ),
        "notes": serializers.ListField(child=serializers.CharField()),
    },
)
_COUNTS = inline_serializer(
    "RowCounts",
    {
        "table": serializers.CharField(),
        "source_rows": serializers.IntegerField(),
        "target_rows": serializers.IntegerField(allow_null=True, help_text="null: no target table yet"),
        "difference": serializers.IntegerField(allow_null=True),
    },
)
_MAPPING = inline_serializer(
    "TypeMapping",
    {"snowflake_type": serializers.CharField(), "postgres_type": serializers.CharField()},
    many=True,
)


class TableMetadataView(ApiView):
    """Source and target columns, the type each source column maps to, and the drift between them."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=TAGS, summary="Columns and drift of a table", responses={200: _METADATA, 503: UNAVAILABLE}
    )
    def get(self, request: Request, name: str) -> Response:
        return Response(table_metadata(_table_or_404(name)))


class RowCountsView(ApiView):
    """Rows in the source and in the target."""

    permission_classes = [IsViewer]

    @extend_schema(tags=TAGS, summary="Row counts of a table", responses={200: _COUNTS, 503: UNAVAILABLE})
    def get(self, request: Request, name: str) -> Response:
        return Response(row_counts(_table_or_404(name)))


class TypeMappingView(ApiView):
    """How each Snowflake type is stored in PostgreSQL (docs/pipeline.md explains why)."""

    permission_classes = [IsViewer]

    @extend_schema(tags=TAGS, summary="Type mapping", responses={200: _MAPPING})
    def get(self, request: Request) -> Response:
        from syncengine.pipeline.typemap import SourceColumn, postgres_type_for

        mapping = []
        for data_type in MAPPED_TYPES:
            if data_type == "NUMBER":
                mapping.append({"snowflake_type": "NUMBER(p,s)", "postgres_type": "numeric(p,s)"})
                continue
            column = SourceColumn(name="column", data_type=data_type)
            mapping.append(
                {"snowflake_type": data_type, "postgres_type": postgres_type_for(column, table="")}
            )
        return Response(mapping)
