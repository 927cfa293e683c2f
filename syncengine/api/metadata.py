"""Metadata endpoints: /api/v1/metadata/. What the source and the target look like now, how the types map,
how they drift apart, and how many rows each side holds.

The work is `syncengine.inspection`; these views render its answers. An unreachable Snowflake or target, or
missing settings, answers 503 with the reason; a source table that does not exist answers 404. The
inspection service is imported inside the views, so that web processes that never call these do not load
the Snowflake connector and pyarrow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from syncengine.inspection import Inspected, InspectionError, RowCounts

TAGS = ["metadata"]
UNAVAILABLE = error_response("Snowflake or the target database cannot be reached, or is not configured.")


def _table_or_404(name: str) -> TableConfig:
    try:
        return config_selectors.table_get(name=name)
    except TableConfig.DoesNotExist:
        raise NotFound(f"No table named {name!r}.") from None


def _api_error(exc: InspectionError) -> ApiError:
    from syncengine.inspection import SourceNotFound, SourceUnavailable

    if isinstance(exc, SourceNotFound):
        return ApiError(exc.message, code="source_not_found", status_code=404)
    if isinstance(exc, SourceUnavailable):
        return unavailable(f"Snowflake: {exc.message}", code="snowflake_unavailable")
    return unavailable(f"target database: {exc.message}", code="target_unavailable")


def render_metadata(table: TableConfig, inspected: Inspected) -> dict[str, Any]:
    from syncengine.pipeline.inspect import mapped_type

    spec, inspection = inspected.spec, inspected.inspection
    planned, target = inspection.planned, inspection.target
    drift = inspection.drift
    return {
        "table": table.name,
        "source": {
            "database": spec.source.database,
            "schema": spec.source.schema,
            "table": spec.source.table,
            "declared_primary_key": list(inspection.source.declared_key),
            "columns": [
                {
                    "name": column.name,
                    "type": column.display_type,
                    "data_type": column.data_type,
                    "precision": column.precision,
                    "scale": column.scale,
                    "length": column.length,
                    "nullable": column.nullable,
                    "postgres_type": mapped_type(column, table=spec.name),
                    "loaded": column.name in planned,
                    "target_name": planned[column.name].target_name if column.name in planned else None,
                    "target_type": planned[column.name].target_type if column.name in planned else None,
                }
                for column in inspection.source.columns
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
        "drift": {
            "added": drift.added,
            "dropped": drift.dropped,
            "changed": [
                {
                    "column": changed.column,
                    "source_type": changed.source_type,
                    "needs": changed.needs,
                    "target_type": changed.target_type,
                }
                for changed in drift.changed
            ],
            "in_sync": drift.in_sync,
            "outcome": drift.outcome,
            "policy": spec.drift_policy.value,
        },
        "plan_error": inspection.plan_error,
        "notes": inspection.notes,
    }


def render_row_counts(table: TableConfig, counts: RowCounts) -> dict[str, Any]:
    return {
        "table": table.name,
        "source_rows": counts.source_rows,
        "target_rows": counts.target_rows,
        "difference": counts.source_rows - counts.target_rows if counts.target_rows is not None else None,
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
        from syncengine import inspection

        table = _table_or_404(name)
        try:
            inspected = inspection.table_inspect(table=table)
        except inspection.InspectionError as exc:
            raise _api_error(exc) from None
        return Response(render_metadata(table, inspected))


class RowCountsView(ApiView):
    """Rows in the source and in the target."""

    permission_classes = [IsViewer]

    @extend_schema(tags=TAGS, summary="Row counts of a table", responses={200: _COUNTS, 503: UNAVAILABLE})
    def get(self, request: Request, name: str) -> Response:
        from syncengine import inspection

        table = _table_or_404(name)
        try:
            counts = inspection.table_row_counts(table=table)
        except inspection.InspectionError as exc:
            raise _api_error(exc) from None
        return Response(render_row_counts(table, counts))


class TypeMappingView(ApiView):
    """How each Snowflake type is stored in PostgreSQL (docs/pipeline.md explains why)."""

    permission_classes = [IsViewer]

    @extend_schema(tags=TAGS, summary="Type mapping", responses={200: _MAPPING})
    def get(self, request: Request) -> Response:
        from syncengine.pipeline.inspect import type_mapping

        return Response(
            [
                {"snowflake_type": snowflake_type, "postgres_type": postgres_type}
                for snowflake_type, postgres_type in type_mapping()
            ]
        )
