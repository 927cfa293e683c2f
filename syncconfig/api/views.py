"""Table endpoints: /api/v1/tables/. A table is represented exactly as one entry of `config/tables.yaml`, and
every write is validated by the same schema as the YAML import and the admin (`syncconfig.services`); a table
the services refuse (TableRejected) is answered with 400 by the API's error handler (`syncconfig.api.errors`).

The YAML endpoints are `yaml-export/` and `yaml-import/`: a hyphen can never be part of a table's name, so no
table can hide behind them.
"""

from __future__ import annotations

from typing import Any, cast

from django.db.models import Q, QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiRequest, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from fdm.api.pagination import PAGE_PARAMETERS, Pagination
from fdm.api.parsers import JSONParser, RawBodyParser
from fdm.api.permissions import IsOperator, IsViewer, ViewerReadsOperatorWrites
from fdm.api.schema import paginated
from fdm.api.views import ApiView
from syncconfig import selectors, services, yaml_io
from syncconfig.api.errors import config_rejected
from syncconfig.api.openapi import TABLE_REF
from syncconfig.api.serializers import HistoryEntrySerializer, ImportResultSerializer
from syncconfig.choices import ScheduleKind, SyncMode
from syncconfig.models import TableConfig

API_REASON = "api"
# A YAML document of tables (config/tables.yaml), as its parsed structure.
DOCUMENT_SCHEMA = {
    "type": "object",
    "required": ["tables"],
    "properties": {"tables": {"type": "array", "items": TABLE_REF}},
}
TAGS = ["tables"]


class YamlParser(RawBodyParser):
    """Hands the raw YAML text, at most a document's size limit, to the import service's strict loader."""

    media_type = "application/yaml"  # type: ignore[assignment]  # DRF declares it None
    limit = yaml_io.MAX_DOCUMENT_BYTES


def _bool_param(request: Request, name: str) -> bool | None:
    from rest_framework.exceptions import ValidationError

    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    lowered = raw.lower()
    if lowered in {"true", "1"}:
        return True
    if lowered in {"false", "0"}:
        return False
    raise ValidationError({name: [f"must be true or false, got {raw!r}"]})


def _choice_param(request: Request, name: str, choices: tuple[str, ...]) -> str | None:
    from rest_framework.exceptions import ValidationError

    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        raise ValidationError({name: [f"must be one of: {', '.join(choices)}; got {raw!r}"]})
    return raw


def _table_or_404(name: str) -> TableConfig:
    try:
        return selectors.table_get(name=name)
    except TableConfig.DoesNotExist:
        raise NotFound(f"No table named {name!r}.") from None


class TableListView(ApiView):
    """List and create tables."""

    permission_classes = [ViewerReadsOperatorWrites]
    pagination_class = Pagination
    parser_classes = [JSONParser]

    def get_queryset(self) -> QuerySet[TableConfig]:
        request = cast(Request, self.request)
        tables = selectors.table_list(enabled=_bool_param(request, "enabled"))
        mode = _choice_param(request, "sync_mode", tuple(SyncMode.values))
        if mode:
            tables = tables.filter(sync_mode=mode)
        kind = _choice_param(request, "schedule", tuple(ScheduleKind.values))
        if kind == ScheduleKind.CRON:
            tables = tables.exclude(schedule__in=ScheduleKind.keywords())
        elif kind:
            tables = tables.filter(schedule=kind)
        search = request.query_params.get("search", "").strip()
        if search:
            tables = tables.filter(
                Q(name__icontains=search)
                | Q(snowflake_table__icontains=search)
                | Q(postgres_table__icontains=search)
                | Q(notes__icontains=search)
            )
        return tables

    @extend_schema(
        tags=TAGS,
        summary="List tables",
        operation_id="tables_list",
        parameters=[
            OpenApiParameter(
                "enabled", OpenApiTypes.BOOL, description="Only enabled (true) or disabled tables."
            ),
            OpenApiParameter("sync_mode", OpenApiTypes.STR, enum=list(SyncMode.values)),
            OpenApiParameter("schedule", OpenApiTypes.STR, enum=list(ScheduleKind.values)),
            OpenApiParameter(
                "search", OpenApiTypes.STR, description="In name, source and target table, notes."
            ),
            OpenApiParameter("page", OpenApiTypes.INT),
            OpenApiParameter("page_size", OpenApiTypes.INT, description="At most 500; default 50."),
        ],
        responses={200: paginated(TABLE_REF)},
    )
    def get(self, request: Request) -> Response:
        return self.paginated(self.get_queryset(), lambda page: [table.to_table_dict() for table in page])

    @extend_schema(
        tags=TAGS,
        summary="Create a table",
        request={"application/json": TABLE_REF},
        responses={201: TABLE_REF},
    )
    def post(self, request: Request) -> Response:
        table = services.table_save_document(document=request.data, user=request.user, reason=API_REASON)
        return Response(
            table.to_table_dict(), status=status.HTTP_201_CREATED, headers={"Location": f"{table.name}/"}
        )


class TableDetailView(ApiView):
    """Read, replace, change or delete one table."""

    permission_classes = [ViewerReadsOperatorWrites]
    parser_classes = [JSONParser]

    @extend_schema(tags=TAGS, summary="Read a table", responses={200: TABLE_REF})
    def get(self, request: Request, name: str) -> Response:
        return Response(_table_or_404(name).to_table_dict())

    @extend_schema(
        tags=TAGS,
        summary="Replace a table",
        description="Every setting is replaced; keys left out take their defaults. A different `name` renames "
        "the table (its runs and schedule follow it).",
        request={"application/json": TABLE_REF},
        responses={200: TABLE_REF},
    )
    def put(self, request: Request, name: str) -> Response:
        return self._save(request, _table_or_404(name), request.data)

    @extend_schema(
        tags=TAGS,
        summary="Change some settings of a table",
        description="A JSON Merge Patch (RFC 7386) of the table dict: given keys replace, `null` restores a "
        "key's default, nested mappings (`snowflake`, `postgres`) merge key by key.",
        request={"application/json": {"type": "object"}},
        responses={200: TABLE_REF},
    )
    def patch(self, request: Request, name: str) -> Response:
        table = _table_or_404(name)
        if not isinstance(request.data, dict):
            raise config_rejected([], message="The patch must be a JSON object.")
        return self._save(request, table, yaml_io.merge_patch(table.to_table_dict(), request.data))

    @extend_schema(tags=TAGS, summary="Delete a table", responses={204: None})
    def delete(self, request: Request, name: str) -> Response:
        services.table_delete(table=_table_or_404(name), user=request.user, reason=API_REASON)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _save(self, request: Request, table: TableConfig, document: Any) -> Response:
        table = services.table_save_document(
            document=document, table=table, user=request.user, reason=API_REASON
        )
        return Response(table.to_table_dict())


class TableHistoryView(ApiView):
    """The audit trail of one table: who changed what, when and why, newest first."""

    permission_classes = [IsViewer]
    pagination_class = Pagination
    serializer_class = HistoryEntrySerializer  # type: ignore[assignment]  # DRF declares it None

    @extend_schema(
        tags=TAGS,
        summary="A table's change history",
        description="Also answers for a deleted table, by its last name.",
        parameters=[
            *PAGE_PARAMETERS,
        ],
        responses={200: HistoryEntrySerializer(many=True)},
    )
    def get(self, request: Request, name: str) -> Response:
        live = TableConfig.objects.filter(name=name).values_list("pk", flat=True).first()
        if live is None:
            live = (
                TableConfig.history.filter(name=name)
                .order_by("-history_date")
                .values_list("id", flat=True)
                .first()
            )
        if live is None:
            raise NotFound(f"No table named {name!r}, now or in the history.")
        records = (
            TableConfig.history.filter(id=live)
            .select_related("history_user")
            .order_by("-history_date", "-history_id")
        )
        return self.paginated(records, HistoryEntrySerializer)


class TableExportView(ApiView):
    """All tables (or the named ones) as a YAML document that `yaml-import/` and `import_tables` read."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=TAGS,
        summary="Export tables as YAML",
        parameters=[
            OpenApiParameter(
                "name", OpenApiTypes.STR, many=True, description="Only these tables (repeatable)."
            )
        ],
        responses={
            (200, "application/yaml"): OpenApiResponse(DOCUMENT_SCHEMA, description="The YAML document.")
        },
    )
    def get(self, request: Request) -> HttpResponse:
        names = request.query_params.getlist("name") or None
        if names:
            found = set(selectors.table_list(names=names).values_list("name", flat=True))
            missing = sorted(set(names) - found)
            if missing:
                raise NotFound(f"No table named {', '.join(repr(n) for n in missing)}.")
        return HttpResponse(
            services.tables_export(names=names), content_type="application/yaml; charset=utf-8"
        )


class TableImportView(ApiView):
    """Make the stored tables match a document, atomically; with dry_run, only report what would change."""

    permission_classes = [IsOperator]
    parser_classes = [YamlParser, JSONParser]

    @extend_schema(
        tags=TAGS,
        summary="Import tables from YAML",
        description="The body is the document, as YAML (`Content-Type: application/yaml`) or the same structure "
        "as JSON. A document with any error changes nothing; every error is listed with its table and key.",
        parameters=[
            OpenApiParameter("dry_run", OpenApiTypes.BOOL, description="Report the plan, change nothing."),
            OpenApiParameter(
                "prune", OpenApiTypes.BOOL, description="Delete stored tables not in the document."
            ),
            OpenApiParameter("env", OpenApiTypes.STR, description="Apply config/environments/{env}.yaml."),
            OpenApiParameter(
                "expect_digest", OpenApiTypes.STR, description="Refuse unless the plan's digest equals this."
            ),
        ],
        request={
            "application/yaml": OpenApiRequest(OpenApiTypes.STR),
            "application/json": DOCUMENT_SCHEMA,
        },
        responses={200: ImportResultSerializer},
    )
    def post(self, request: Request) -> Response:
        document = request.data
        if isinstance(document, bytes | str):
            source = "request body"
        else:
            source = "request body (JSON)"
        env = request.query_params.get("env") or None
        result = services.tables_import(
            document=document,
            env=env,
            dry_run=bool(_bool_param(request, "dry_run")),
            prune=bool(_bool_param(request, "prune")),
            user=request.user,
            source=source,
            via=API_REASON,
            expect_digest=request.query_params.get("expect_digest") or None,
        )
        if not result.ok:
            raise config_rejected(
                result.errors, message="The document is invalid; nothing was changed.", document=True
            )
        return Response(ImportResultSerializer(result).data)
