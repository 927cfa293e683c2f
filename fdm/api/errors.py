"""One error body for every API error, whatever raised it:

    {"error": {"code": "validation_error", "message": "...", "details": [{"field": "snowflake.table", "message": "..."}]}}

`code` is a stable, machine-readable word; `message` is for people; `details` lists problems with single
fields (the field is a dotted path as the YAML uses it, `""` for the request as a whole) and is empty for
errors that concern no field. The HTTP status carries the class of error: 400 bad input, 401 no or a bad
key, 403 a role too low, 404 unknown object, 405 method, 409 a state that forbids the action (cancelling a
finished run), 429 throttled, 503 a dependency (Snowflake, the target database) unreachable.

The kit knows no app: an app whose domain errors reach a view registers how each becomes an `ApiError`
(`register_error`, from its AppConfig.ready), and the handler converts them, so views need not catch them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from fdm.api.parsers import BodyTooLarge, body_limit

logger = logging.getLogger("fdm.api")

# DRF's own codes where they are not self-explanatory.
_CODES = {"invalid": "validation_error", "error": "server_error"}
NON_FIELD_KEYS = {"non_field_errors", "__all__"}


class ApiError(exceptions.APIException):
    """An error with an explicit code, message and field details."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status_code: int,
        details: Iterable[tuple[str, str]] = (),
    ):
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.message = message
        self.details = [{"field": field, "message": text} for field, text in details]


def conflict(message: str) -> ApiError:
    return ApiError(message, code="conflict", status_code=status.HTTP_409_CONFLICT)


def unavailable(message: str, *, code: str = "unavailable") -> ApiError:
    return ApiError(message, code=code, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)


# Domain errors of the apps, by type, with what turns each into an API error.
_CONVERTERS: dict[type[Exception], Callable[[Any], ApiError]] = {}


def register_error(error_type: type[Exception], convert: Callable[[Any], ApiError]) -> None:
    """Answer `error_type` (and its subclasses), raised anywhere in a view, with `convert(error)`."""
    _CONVERTERS[error_type] = convert


def _converted(exc: Exception) -> Exception:
    for error_type in type(exc).__mro__:
        convert = _CONVERTERS.get(error_type)
        if convert is not None:
            return convert(exc)
    return exc


def _flatten(detail: Any, path: str = "") -> list[dict[str, str]]:
    """DRF's nested error detail as a flat list of {field, message}, fields as dotted paths."""
    if isinstance(detail, Mapping):
        out: list[dict[str, str]] = []
        for key, value in detail.items():
            key = str(key)
            sub = path if key in NON_FIELD_KEYS else (f"{path}.{key}" if path else key)
            out.extend(_flatten(value, sub))
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, Mapping | list) for item in detail):
            return [{"field": path, "message": str(item)} for item in detail]
        out = []
        for index, item in enumerate(detail):
            out.extend(_flatten(item, f"{path}[{index}]"))
        return out
    return [{"field": path, "message": str(detail)}]


def error_body(code: str, message: str, details: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler with fdm's error body; anything unexpected becomes a logged 500 in the same shape."""
    exc = _converted(exc)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or None)
    elif isinstance(exc, RequestDataTooBig):
        exc = BodyTooLarge(f"The request body is larger than the limit of {body_limit()} bytes.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("unhandled error in %s", context.get("view").__class__.__name__, exc_info=exc)
        return Response(
            error_body("server_error", "An unexpected error occurred; it has been logged."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if isinstance(exc, ApiError):
        response.data = error_body(exc.error_code, exc.message, exc.details)
        return response
    assert isinstance(exc, exceptions.APIException)
    raw_code = exc.default_code if not isinstance(exc, exceptions.ValidationError) else "invalid"
    code = _CODES.get(raw_code, raw_code)
    if isinstance(exc, exceptions.ValidationError):
        details = _flatten(exc.detail)
        message = "Invalid input." if len(details) != 1 else f"{_label(details[0])}{details[0]['message']}"
        response.data = error_body(code, message, details)
    else:
        response.data = error_body(code, str(exc.detail))
    return response


def _label(detail: dict[str, str]) -> str:
    return f"{detail['field']}: " if detail["field"] else ""


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(("/api/", "/health/"))


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 404 for URLs no view matched: the API's error body under /api/ and /health/."""
    if _wants_json(request):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception or Http404())


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's 500 outside DRF (middleware, URL resolution): the API's error body under /api/ and /health/."""
    if _wants_json(request):
        return JsonResponse(
            error_body("server_error", "An unexpected error occurred; it has been logged."), status=500
        )
    from django.views.defaults import server_error as html_server_error

    return html_server_error(request)
