"""Data endpoints: /api/v1/data/{table}/ and /api/v1/data/{table}/search/. The rows of a synced table as
PostgreSQL holds them, page by page in primary-key order (keyset pagination: `next` carries a signed cursor),
with exact-match filters: `?column=value` on clear columns, and in the JSON body of a POST to `search/` on any
column, encrypted searchable ones included (through their blind index) — a value sought in an encrypted column
is sensitive itself and must not sit in URLs, which servers and proxies log.

Encrypted columns come back decrypted to callers with the admin role or the permission
`syncengine.read_decrypted`; everyone else who may read (viewers and operators) gets them masked as
"[encrypted]" and may not filter on them. `masked=true` asks for the masked form whatever the caller may do.
Every response that returns an encrypted column in clear, or filters on one, is audited.
"""

from __future__ import annotations

import base64
import datetime
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core import signing
from django.core.exceptions import PermissionDenied
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from fdm.api.client_ip import client_ip
from fdm.api.errors import ApiError, unavailable
from fdm.api.parsers import JSONParser
from fdm.api.permissions import IsViewer
from fdm.api.schema import error_response
from fdm.api.views import ApiView
from syncconfig import selectors as config_selectors
from syncconfig.models import TableConfig
from syncengine import protected_data

TAGS = ["data"]
DEFAULT_PAGE_SIZE = 100
RESERVED = {"cursor", "page_size", "masked", "format"}  # query parameters that are not filters

ROWS_SCHEMA = {
    "type": "object",
    "required": ["results", "next", "columns", "masked_columns"],
    "properties": {
        "results": {
            "type": "array",
            "items": {"type": "object", "additionalProperties": True},
            "description": "Rows, keyed by the PostgreSQL column names. Numbers with a scale come as strings "
            "(exact), timestamps as ISO 8601, bytea as base64, jsonb as JSON.",
        },
        "next": {
            "type": ["string", "null"],
            "format": "uri",
            "description": "The next page (GET), or null; a search's next page is the same body with `next_cursor`.",
        },
        "next_cursor": {"type": ["string", "null"], "description": "The next page's cursor, or null."},
        "columns": {"type": "array", "items": {"type": "string"}},
        "masked_columns": {
            "type": "array",
            "items": {"type": "string"},
            "description": 'Encrypted columns returned as "[encrypted]".',
        },
        "decrypted_columns": {"type": "array", "items": {"type": "string"}},
    },
}


SEARCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "filters": {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean"]},
            "description": "Exact-match filters by column name; encrypted columns when they are searchable.",
        },
        "page_size": {"type": "integer", "minimum": 1, "maximum": 1000},
        "masked": {"type": "boolean"},
        "cursor": {"type": ["string", "null"], "description": "The previous page's `next_cursor`."},
    },
    "additionalProperties": False,
}


def may_read_decrypted(user: Any) -> bool:
    """The admin role's group holds `syncengine.read_decrypted` (migration apikeys 0003); so may anyone
    granted it directly."""
    return protected_data.can_read_decrypted(user)


CURSOR_SALT = "fdm.data.cursor"


def encode_cursor(table: str, values: list[Any]) -> str:
    """A cursor for the page after the row with key `values`: signed, so that a client can only hand back one
    this API issued, for this table."""
    return signing.dumps([table, [_cursor_text(value) for value in values]], salt=CURSOR_SALT, compress=True)


def decode_cursor(table: str, token: str) -> list[str]:
    try:
        issued_for, values = signing.loads(token, salt=CURSOR_SALT)
    except (signing.BadSignature, ValueError, TypeError):
        issued_for, values = None, None
    if issued_for != table or not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ApiError(
            "The cursor is not one this API issued for this table.",
            code="invalid_cursor",
            status_code=400,
            details=[("cursor", "malformed")],
        )
    return values


def _cursor_text(value: Any) -> str:
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    return str(value)


def json_value(value: Any) -> Any:
    """A column value as JSON: exact decimals and non-finite floats as text, times in ISO 8601, bytes base64."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime.timedelta):
        return str(value)
    return value


class TableDataView(ApiView):
    permission_classes = [IsViewer]

    @extend_schema(
        tags=TAGS,
        summary="Rows of a synced table",
        parameters=[
            OpenApiParameter(
                "name", OpenApiTypes.STR, OpenApiParameter.PATH, description="The table's name."
            ),
            OpenApiParameter("cursor", OpenApiTypes.STR, description="From the previous page's `next`."),
            OpenApiParameter(
                "page_size",
                OpenApiTypes.INT,
                description=f"Rows per page, 1-1000 (default {DEFAULT_PAGE_SIZE}).",
            ),
            OpenApiParameter(
                "masked", OpenApiTypes.BOOL, description="Mask encrypted columns even if allowed."
            ),
        ],
        responses={
            200: OpenApiResponse(response=ROWS_SCHEMA, description="One page of rows."),
            404: error_response("No such table, or it has not been synced yet."),
            409: error_response("A stored value does not verify (altered, or its key is gone)."),
            503: error_response("The target database or the keyring is unavailable."),
        },
    )
    def get(self, request: Request, name: str) -> Response:
        """Other query parameters are exact-match filters on clear columns: `?currency=EUR`. Filters on
        encrypted columns are refused here (400): send them to `search/`."""
        table = _table(name)
        params = request.query_params
        query = ReadQuery(
            filters={key: params[key] for key in params if key not in RESERVED},
            page_size=_page_size(params.get("page_size")),
            masked=_flag(params.get("masked"), "masked"),
            after=decode_cursor(table.name, params["cursor"]) if params.get("cursor") else None,
        )
        page = _read(request, table, query, encrypted_filters=False)
        next_url = None
        if page.next_after is not None:
            following = params.copy()
            following["cursor"] = encode_cursor(table.name, page.next_after)
            next_url = request.build_absolute_uri(f"{request.path}?{following.urlencode()}")
        return Response(_body(table, page, next_url=next_url))


class TableSearchView(ApiView):
    """The same rows, filtered by a JSON body: the way to filter on encrypted columns."""

    permission_classes = [IsViewer]
    parser_classes = [JSONParser]

    @extend_schema(
        tags=TAGS,
        summary="Search a synced table",
        description="Filters travel in the body, so that a value sought in an encrypted column never sits in "
        "a URL. The next page: the same body with `cursor` set to the response's `next_cursor`.",
        parameters=[
            OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH, description="The table's name.")
        ],
        request={"application/json": SEARCH_SCHEMA},
        responses={
            200: OpenApiResponse(response=ROWS_SCHEMA, description="One page of rows."),
            400: error_response("A bad body, filter or cursor."),
            403: error_response("A filter on an encrypted column without the permission to read it."),
            404: error_response("No such table, or it has not been synced yet."),
            409: error_response("A stored value does not verify (altered, or its key is gone)."),
            503: error_response("The target database or the keyring is unavailable."),
        },
    )
    def post(self, request: Request, name: str) -> Response:
        table = _table(name)
        body = request.data if isinstance(request.data, dict) else None
        unknown = sorted(set(body) - set(SEARCH_SCHEMA["properties"])) if body is not None else []
        filters = body.get("filters", {}) if body is not None else None
        if body is None or unknown or not isinstance(filters, dict):
            problem = f"unknown key {unknown[0]!r}" if unknown else "expected {filters: {column: value}, ...}"
            raise ApiError(
                "The search body is invalid.",
                code="validation_error",
                status_code=400,
                details=[("", problem)],
            )
        bad = [column for column, value in filters.items() if not isinstance(value, str | int | bool)]
        if bad:
            raise ApiError(
                "Filter values are strings or numbers.",
                code="validation_error",
                status_code=400,
                details=[(f"filters.{bad[0]}", "must be a string or a number")],
            )
        cursor = body.get("cursor")
        query = ReadQuery(
            filters={column: _filter_text(value) for column, value in filters.items()},
            page_size=_page_size(None if body.get("page_size") is None else str(body["page_size"])),
            masked=_flag(None if body.get("masked") is None else str(body["masked"]), "masked"),
            after=decode_cursor(table.name, cursor) if isinstance(cursor, str) and cursor else None,
        )
        return Response(_body(table, _read(request, table, query, encrypted_filters=True), next_url=None))


@dataclass(frozen=True)
class ReadQuery:
    filters: dict[str, str]
    page_size: int
    masked: bool
    after: list[str] | None


def _table(name: str) -> TableConfig:
    try:
        return config_selectors.table_get(name=name)
    except TableConfig.DoesNotExist:
        raise NotFound(f"No table named {name!r}.") from None


def _filter_text(value: str | int | bool) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _body(table: TableConfig, page: Any, *, next_url: str | None) -> dict[str, Any]:
    return {
        "results": [{key: json_value(value) for key, value in row.items()} for row in page.rows],
        "next": next_url,
        "next_cursor": encode_cursor(table.name, page.next_after) if page.next_after is not None else None,
        "columns": page.columns,
        "masked_columns": page.masked_columns,
        "decrypted_columns": page.decrypted_columns,
    }


def _read(request: Request, table: TableConfig, query: ReadQuery, *, encrypted_filters: bool) -> Any:
    from syncengine.pipeline.errors import ConfigurationError, PipelineError, TransientError
    from syncengine.pipeline.protection.crypto import DecryptionError
    from syncengine.pipeline.protection.reader import ReadError, TableNotSynced

    try:
        return protected_data.table_rows_read(
            table=table,
            user=request.user,
            decrypt=may_read_decrypted(request.user) and not query.masked,
            filters=query.filters,
            after=query.after,
            limit=query.page_size,
            via="api",
            client=client_ip(request._request) or "",  # behind trusted proxies, the client they report
            encrypted_filters=encrypted_filters,
        )
    except PermissionDenied as exc:
        raise ApiError(str(exc), code="permission_denied", status_code=403) from None
    except TableNotSynced as exc:
        raise ApiError(str(exc), code="not_synced", status_code=404) from None
    except protected_data.EncryptedFilterInUrl as exc:
        raise ApiError(
            str(exc),
            code="encrypted_filter_in_url",
            status_code=400,
            details=[(exc.column or "", exc.message)],
        ) from None
    except ReadError as exc:
        raise ApiError(
            str(exc), code="invalid_filter", status_code=400, details=[(exc.column or "", exc.message)]
        ) from None
    except DecryptionError as exc:
        raise ApiError(str(exc), code="integrity_error", status_code=409) from None
    except (ConfigurationError, TransientError) as exc:
        raise unavailable(str(exc), code="data_unavailable") from None
    except PipelineError as exc:
        raise unavailable(str(exc), code="data_unavailable") from None


def _page_size(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError:
        size = 0
    if not 1 <= size <= 1000:
        raise ApiError(
            "page_size must be a whole number from 1 to 1000.",
            code="validation_error",
            status_code=400,
            details=[("page_size", f"got {raw!r}")],
        )
    return size


def _flag(raw: str | None, name: str) -> bool:
    if raw is None or raw == "":
        return False
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise ApiError(
        f"{name} must be true or false.", code="validation_error", status_code=400, details=[(name, raw)]
    )
