"""Reconciliation endpoints under /api/v1/pipeline/: starting one only enqueues it (202, status `queued`); a
worker runs it. Poll `reconciliations/{id}/` until its status is equal, different or failed."""

from __future__ import annotations

from typing import cast

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from fdm.api.pagination import PAGE_PARAMETERS, Pagination
from fdm.api.permissions import IsOperator, IsViewer
from fdm.api.views import ApiView
from syncconfig import selectors as config_selectors
from syncconfig.models import TableConfig
from syncengine import reconciliations
from syncengine.choices import RunTrigger
from syncengine.models import Reconciliation

TAGS = ["pipeline"]


class ReconciliationSerializer(serializers.ModelSerializer):
    """A reconciliation: what was asked, where it is, and what it found (keys and columns, never values)."""

    table = serializers.CharField(source="table_name")
    requested_by = serializers.SerializerMethodField()
    duration_seconds = serializers.SerializerMethodField()
    differences = serializers.ListField(child=serializers.DictField(), read_only=True)
    details = serializers.DictField(read_only=True)

    class Meta:
        model = Reconciliation
        fields = (
            "id",
            "table",
            "trigger",
            "deep",
            "status",
            "requested_by",
            "queued_at",
            "started_at",
            "finished_at",
            "duration_seconds",
            "segments_checked",
            "rows_compared",
            "rows_target",
            "differences_found",
            "differences",
            "details",
            "error_message",
        )
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_requested_by(self, reconciliation: Reconciliation) -> str | None:
        user = reconciliation.requested_by
        return user.get_username() if user is not None else None

    @extend_schema_field({"type": ["number", "null"]})
    def get_duration_seconds(self, reconciliation: Reconciliation) -> float | None:
        duration = reconciliation.duration
        return duration.total_seconds() if duration is not None else None


class ReconcileRequestSerializer(serializers.Serializer):
    deep = serializers.BooleanField(
        default=False, help_text="Compare every row (segment hashes) rather than counts and sums."
    )


class TableReconcileView(ApiView):
    """Start a reconciliation of one table."""

    permission_classes = [IsOperator]

    @extend_schema(
        tags=TAGS,
        summary="Reconcile a table",
        description="Enqueues a reconciliation of the table with its source and answers at once with it "
        "(status `queued`).",
        request=ReconcileRequestSerializer,
        responses={202: ReconciliationSerializer},
    )
    def post(self, request: Request, name: str) -> Response:
        payload = ReconcileRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            table = config_selectors.table_get(name=name)
        except TableConfig.DoesNotExist:
            raise NotFound(f"No table named {name!r}.") from None
        reconciliation = reconciliations.reconciliation_enqueue(
            table=table,
            trigger=RunTrigger.API,
            deep=payload.validated_data["deep"],
            requested_by=request.user,
        )
        return Response(
            ReconciliationSerializer(reconciliation).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": f"../../../reconciliations/{reconciliation.pk}/"},
        )


class ReconciliationListView(ApiView):
    """Reconciliations, newest first."""

    permission_classes = [IsViewer]
    pagination_class = Pagination

    def get_queryset(self) -> QuerySet[Reconciliation]:
        request = cast(Request, self.request)
        tables = [value for raw in request.query_params.getlist("table") for value in raw.split(",") if value]
        found = Reconciliation.objects.select_related("requested_by")
        return found.filter(table_name__in=tables) if tables else found

    @extend_schema(
        tags=TAGS,
        summary="List reconciliations",
        parameters=[
            OpenApiParameter("table", OpenApiTypes.STR, description="Table name(s), comma-separated."),
            *PAGE_PARAMETERS,
        ],
        responses={200: ReconciliationSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        return self.paginated(self.get_queryset(), ReconciliationSerializer)


class ReconciliationDetailView(ApiView):
    """One reconciliation and its result."""

    permission_classes = [IsViewer]

    @extend_schema(tags=TAGS, summary="Read a reconciliation", responses={200: ReconciliationSerializer})
    def get(self, request: Request, reconciliation_id: int) -> Response:
        reconciliation = Reconciliation.objects.filter(pk=reconciliation_id).first()
        if reconciliation is None:
            raise NotFound(f"No reconciliation with id {reconciliation_id}.")
        return Response(ReconciliationSerializer(reconciliation).data)
