"""Pipeline endpoints: /api/v1/pipeline/. Starting a run only enqueues it (trigger `api`) and answers 202 with
the queued run; a worker executes it. Poll `runs/{id}/` until its status is terminal."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from fdm.api.errors import conflict
from fdm.api.pagination import PAGE_PARAMETERS, Pagination
from fdm.api.permissions import IsOperator, IsViewer
from fdm.api.schema import error_response
from fdm.api.views import ApiView
from syncconfig import selectors as config_selectors
from syncconfig.models import TableConfig
from syncengine import evidence, schedules, selectors, services
from syncengine.api.serializers import (
    RunCreateSerializer,
    RunDetailSerializer,
    RunSerializer,
    TableStatusSerializer,
)
from syncengine.choices import RunStatus, RunTrigger
from syncengine.models import SyncRun
from syncengine.run_options import RunOptions

TAGS = ["pipeline"]


def _run_or_404(run_id: int) -> SyncRun:
    run = selectors.run_get(run_id=run_id)
    if run is None:
        raise NotFound(f"No run with id {run_id}.")
    return run


def _datetime_param(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return serializers.DateTimeField().to_internal_value(raw)
    except ValidationError:
        raise ValidationError({name: [f"must be an ISO 8601 date and time, got {raw!r}"]}) from None


def _choices_param(request: Request, name: str, choices: list[str]) -> list[str]:
    values = [v for raw in request.query_params.getlist(name) for v in raw.split(",") if v]
    unknown = [v for v in values if v not in choices]
    if unknown:
        raise ValidationError({name: [f"must be among: {', '.join(choices)}; got {', '.join(unknown)}"]})
    return values


class RunListView(ApiView):
    """List runs (newest first) and start new ones."""

    pagination_class = Pagination

    def get_permissions(self) -> list[Any]:
        return [IsOperator()] if self.request.method == "POST" else [IsViewer()]

    def get_queryset(self) -> QuerySet[SyncRun]:
        request = cast(Request, self.request)
        return selectors.run_list(
            tables=[v for raw in request.query_params.getlist("table") for v in raw.split(",") if v],
            statuses=_choices_param(request, "status", list(RunStatus.values)),
            triggers=_choices_param(request, "trigger", list(RunTrigger.values)),
            queued_after=_datetime_param(request, "queued_after"),
            queued_before=_datetime_param(request, "queued_before"),
        )

    @extend_schema(
        tags=TAGS,
        summary="List runs",
        parameters=[
            OpenApiParameter("table", OpenApiTypes.STR, description="Table name(s), comma-separated."),
            OpenApiParameter(
                "status", OpenApiTypes.STR, description=f"Comma-separated: {', '.join(RunStatus.values)}."
            ),
            OpenApiParameter(
                "trigger", OpenApiTypes.STR, description=f"Comma-separated: {', '.join(RunTrigger.values)}."
            ),
            OpenApiParameter(
                "queued_after", OpenApiTypes.DATETIME, description="Queued at or after (ISO 8601)."
            ),
            OpenApiParameter("queued_before", OpenApiTypes.DATETIME, description="Queued before (ISO 8601)."),
            *PAGE_PARAMETERS,
        ],
        responses={200: RunSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        return self.paginated(self.get_queryset(), RunSerializer)

    @extend_schema(
        tags=TAGS,
        summary="Start a run",
        description="Enqueues a run of the table and answers at once with it (status `queued`). A run of a table "
        "that another run holds is recorded as `skipped` by the worker, never run in parallel. `from` (and "
        "optionally `to`) make it a backfill of that incremental-column range (trigger `backfill`); "
        "`allow_deletes` lets it past the table's delete guard. A bad value answers 400 naming the field.",
        request=RunCreateSerializer,
        responses={202: RunSerializer},
    )
    def post(self, request: Request) -> Response:
        payload = RunCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        name = payload.validated_data["table"]
        try:
            table = config_selectors.table_get(name=name)
        except TableConfig.DoesNotExist:
            raise ValidationError({"table": [f"no table named {name!r}"]}) from None
        data = payload.validated_data
        options = RunOptions(
            backfill_from=data.get("from", ""),
            backfill_to=data.get("to", ""),
            allow_deletes=data["allow_deletes"],
        )
        try:
            run = services.run_enqueue(
                table=table,
                trigger=RunTrigger.BACKFILL if options.backfill_from else RunTrigger.API,
                full_refresh=data["full_refresh"],
                options=options,
                requested_by=request.user,
            )
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from None
        return Response(
            RunSerializer(run).data, status=status.HTTP_202_ACCEPTED, headers={"Location": f"{run.pk}/"}
        )


class RunDetailView(ApiView):
    """One run, with its log."""

    permission_classes = [IsViewer]

    @extend_schema(tags=TAGS, summary="Read a run", responses={200: RunDetailSerializer})
    def get(self, request: Request, run_id: int) -> Response:
        return Response(RunDetailSerializer(_run_or_404(run_id)).data)


class RunEvidenceView(ApiView):
    """A run's evidence pack (syncengine.evidence): what it ran with and did, with a SHA-256 over it all."""

    permission_classes = [IsViewer]

    @extend_schema(
        tags=TAGS,
        summary="Read a run's evidence pack",
        description="One JSON document: configuration and its hashes, Snowflake query ids and SQL, source and "
        "target columns with hashes, counts and seconds per stage, watermarks, checks, reconciliation, key ids "
        "(never keys), fdm's version, and `sha256`: the SHA-256 of the rest of the document serialised with "
        "sorted keys and no whitespace.",
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, run_id: int) -> Response:
        run = _run_or_404(run_id)
        return Response(
            evidence.run_evidence(run),
            headers={"Content-Disposition": f'inline; filename="{evidence.evidence_filename(run)}"'},
        )


class RunCancelView(ApiView):
    """Cancel a queued run at once, or a running one at its next batch boundary."""

    permission_classes = [IsOperator]

    @extend_schema(
        tags=TAGS,
        summary="Cancel a run",
        request=None,
        responses={
            202: RunSerializer,
            409: error_response("The run has already finished."),
        },
    )
    def post(self, request: Request, run_id: int) -> Response:
        run = _run_or_404(run_id)
        if run.is_terminal:
            raise conflict(f"Run #{run.pk} has already finished ({run.status}); there is nothing to cancel.")
        run = services.run_cancel(run=run)
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


def _summary(run: SyncRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    field = serializers.DateTimeField()
    return {
        "id": run.pk,
        "status": run.status,
        "trigger": run.trigger,
        "queued_at": field.to_representation(run.queued_at),
        "started_at": field.to_representation(run.started_at) if run.started_at else None,
        "finished_at": field.to_representation(run.finished_at) if run.finished_at else None,
        "error_message": run.error_message,
    }


def table_statuses(tables: QuerySet[TableConfig]) -> list[dict[str, Any]]:
    """Each table's status as the API shows it, in three queries whatever the number of tables."""
    statuses = selectors.table_statuses(tables=tables, now=timezone.now())
    next_runs = schedules.tables_next_run(tables=[each.table for each in statuses])
    return [_status_body(each, next_runs.get(each.table.pk)) for each in statuses]


def _status_body(table_status: selectors.TableStatus, next_run: datetime | None) -> dict[str, Any]:
    table, success, freshness = table_status.table, table_status.last_success, table_status.freshness
    return {
        "table": table.name,
        "enabled": table.enabled,
        "schedule": table.schedule,
        "next_run_at": serializers.DateTimeField().to_representation(next_run) if next_run else None,
        "last_run": _summary(table_status.last_run),
        "last_success": _summary(success),
        "active_run": _summary(table_status.active_run),
        "freshness_seconds": freshness.seconds if freshness.ever_succeeded else None,
        "max_staleness_minutes": table.max_staleness_minutes,
        "stale": freshness.past_limit,
        "watermark": success.watermark_after if success is not None else None,
        "reconciliation_status": (success.reconciliation_status or None) if success is not None else None,
    }


class TableStatusListView(ApiView):
    """Every table's status."""

    permission_classes = [IsViewer]
    pagination_class = Pagination

    @extend_schema(
        tags=TAGS,
        summary="Status of every table",
        parameters=[
            *PAGE_PARAMETERS,
        ],
        responses={200: TableStatusSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        return self.paginated(
            config_selectors.table_list(),
            lambda page: table_statuses(config_selectors.table_list(names=[t.name for t in page])),
        )


class TableStatusView(ApiView):
    """One table's status: last run, last success, freshness, watermark."""

    permission_classes = [IsViewer]

    @extend_schema(tags=TAGS, summary="Status of a table", responses={200: TableStatusSerializer})
    def get(self, request: Request, name: str) -> Response:
        statuses = table_statuses(config_selectors.table_list(names=[name]))
        if not statuses:
            raise NotFound(f"No table named {name!r}.")
        return Response(statuses[0])
