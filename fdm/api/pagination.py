"""Page-number pagination for every list: `?page=2&page_size=100`."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"  # type: ignore[assignment]
    max_page_size = 500  # type: ignore[assignment]  # DRF declares it None, which its unannotated code makes its type


# The query parameters of a paginated list, for the schema of views that paginate by hand.
PAGE_PARAMETERS = [
    OpenApiParameter("page", OpenApiTypes.INT),
    OpenApiParameter("page_size", OpenApiTypes.INT),
]
