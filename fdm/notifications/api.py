"""Incidents, read-only: GET /api/v1/incidents/ (viewer)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from fdm.api.pagination import PAGE_PARAMETERS, Pagination
from fdm.api.permissions import IsViewer
from fdm.api.views import ApiView
from fdm.notifications import selectors
from fdm.notifications.choices import IncidentKind, IncidentStatus
from fdm.notifications.models import Incident

TAGS = ["incidents"]


class IncidentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Incident
        fields = (
            "id",
            "kind",
            "key",
            "table",
            "status",
            "title",
            "detail",
            "occurrences",
            "opened_at",
            "last_seen_at",
            "resolved_at",
            "resolution",
        )
        read_only_fields = fields


class IncidentListView(ApiView):
    """Incidents, newest first."""

    permission_classes = [IsViewer]
    pagination_class = Pagination

    @extend_schema(
        tags=TAGS,
        summary="List incidents",
        parameters=[
            OpenApiParameter(
                "status", OpenApiTypes.STR, enum=IncidentStatus.values, description="open or resolved"
            ),
            OpenApiParameter(
                "kind", OpenApiTypes.STR, enum=IncidentKind.values, description="Only this kind."
            ),
            *PAGE_PARAMETERS,
        ],
        responses={200: IncidentSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        status = _choice(request, "status", IncidentStatus.values)
        kind = _choice(request, "kind", IncidentKind.values)
        return self.paginated(selectors.incident_list(status=status, kind=kind), IncidentSerializer)


def _choice(request: Request, name: str, allowed: list[str]) -> str | None:
    value = request.query_params.get(name, "")
    if value and value not in allowed:
        raise serializers.ValidationError({name: [f"expected one of {', '.join(allowed)}, got {value!r}"]})
    return value or None
