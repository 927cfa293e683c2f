"""The base class of fdm's API views."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from fdm.api.pagination import PaginatedMixin


class _NoFields(serializers.Serializer):
    """Stands in where a view declares no serializer, so that the browsable API can draw its raw-data form."""


class ApiView(PaginatedMixin):
    """GenericAPIView (pagination through `paginated`, the browsable API) for views that parse and render through
    services rather than through one model serializer; each view names its permission classes and documents its
    schema."""

    filter_backends: list[Any] = []  # filters are query parameters each view documents and parses itself

    def get_serializer_class(self) -> Any:
        return self.serializer_class or _NoFields

    def get_queryset(self) -> Any:
        # The browsable API asks list views for one to draw filter forms, which fdm's views do not use.
        return self.queryset if self.queryset is not None else []
