"""Page-number pagination for every list: `?page=2&page_size=100`."""

from __future__ import annotations

from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"  # type: ignore[assignment]
    max_page_size = 500  # type: ignore[assignment]  # DRF declares it None, which its unannotated code makes its type
