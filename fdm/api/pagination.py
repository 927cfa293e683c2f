"""Page-number pagination for every list: `?page=2&page_size=100`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"  # type: ignore[assignment]
    max_page_size = 500  # type: ignore[assignment]  # DRF declares it None, which its unannotated code makes its type


# The query parameters of a paginated list, for the schema of views that paginate by hand.
PAGE_PARAMETERS = [
    OpenApiParameter("page", OpenApiTypes.INT),
    OpenApiParameter("page_size", OpenApiTypes.INT),
]

# What renders one page: a serializer class (used with many=True) or a function of the page's items.
PageRenderer = type[BaseSerializer] | Callable[[list[Any]], Any]


class PaginatedMixin(GenericAPIView):
    """`paginated(queryset, render)`: one page of a list view's answer, with `count`, `next` and `previous`."""

    def paginated(self, items: Iterable[Any], render: PageRenderer) -> Response:
        page = self.paginate_queryset(items)
        assert page is not None, "a paginated view needs a pagination_class"
        renderer: Any = render  # DRF's serializers take many=True, which their untyped signature hides
        if isinstance(render, type) and issubclass(render, BaseSerializer):
            return self.get_paginated_response(renderer(page, many=True).data)
        return self.get_paginated_response(renderer(list(page)))
