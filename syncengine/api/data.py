"""Data endpoint: /api/v1/data/{table}/. The rows of a synced table as PostgreSQL holds them, page by page in
primary-key order (keyset pagination: `next` carries an opaque cursor), with exact-match filters
`?column=value` (an encrypted column when it is searchable, through its blind index).

Encrypted columns come back decrypted to callers with the admin role or the permission
`syncengine.read_decrypted`, and every such response is audited; everyone else who may read (viewers and
operators) gets them masked as "[encrypted]" and may not filter on them. `?masked=true` asks for the masked
form whatever the caller may do (and is not audited).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import math
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from fdm.api.errors import ApiError, unavailable
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
        "next": {"type": ["string", "null"], "format": "uri", "description": "The next page, or null."},
        "columns": {"type": "array", "items": {"type": "string"}},
        "masked_columns": {
            "type": "array",
            "items": {"type": "string"},
            "description": 'Encrypted columns returned as "[encrypted]".',
        },
        "decrypted_columns": {"type": "array", "items": {"type": "string"}},
    },
}


def may_read_decrypted(user: Any) -> bool:
    """The admin role's group holds `syncengine.read_decrypted` (migration apikeys 0003); so may anyone
    granted it directly."""
    return protected_data.can_read_decrypted(user)


def encode_cursor(values: list[Any]) -> str:
    text = json.dumps([_cursor_text(value) for value in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(token: str) -> list[str]:
    try:
        values = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        values = None
    if not isinstance(values, list) or not values or not all(isinstance(value, str) for value in values):
        raise ApiError(
            "The cursor is not one this API issued.",
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
        """Other query parameters are exact-match filters on the column of that name: `?currency=EUR`."""
        try:
            table = config_selectors.table_get(name=name)
        except TableConfig.DoesNotExist:
            raise NotFound(f"No table named {name!r}.") from None
        params = request.query_params
        page_size = _page_size(params.get("page_size"))
        masked = _flag(params.get("masked"), "masked")
        after = decode_cursor(params["cursor"]) if params.get("cursor") else None
        filters = {key: params[key] for key in params if key not in RESERVED}
        decrypt = may_read_decrypted(request.user) and not masked
        page = _read(request, table, decrypt=decrypt, filters=filters, after=after, page_size=page_size)
        next_url = None
        if page.next_after is not None:
            query = params.copy()
            query["cursor"] = encode_cursor(page.next_after)
            next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        return Response(
            {
                "results": [{key: json_value(value) for key, value in row.items()} for row in page.rows],
                "next": next_url,
                "columns": page.columns,
                "masked_columns": page.masked_columns,
                "decrypted_columns": page.decrypted_columns,
            }
        )


def _read(
    request: Request, table: TableConfig, *, decrypt: bool, filters: dict[str, str], after, page_size: int
):
    from syncengine.pipeline.errors import ConfigurationError, PipelineError, TransientError
    from syncengine.pipeline.protection.crypto import DecryptionError
    from syncengine.pipeline.protection.reader import ReadError, TableNotSynced

    try:
        return protected_data.table_rows_read(
            table=table,
            user=request.user,
            decrypt=decrypt,
            filters=filters,
            after=after,
            limit=page_size,
            via="api",
            client=request.META.get("REMOTE_ADDR", ""),
        )
    except PermissionDenied as exc:
        raise ApiError(str(exc), code="permission_denied", status_code=403) from None
    except TableNotSynced as exc:
        raise ApiError(str(exc), code="not_synced", status_code=404) from None
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
