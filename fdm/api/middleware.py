"""Refuse API requests whose path or query string holds a NUL character, before any view sees them.

PostgreSQL text cannot contain NUL, so such a value would fail as a database error deep inside a lookup (a 500,
and an aborted transaction) rather than as the bad input it is. JSON bodies need no such guard: DRF's string
fields and the table schema refuse NUL themselves.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from fdm.api.errors import error_body

API_PREFIXES = ("/api/", "/health/")


class RejectNulCharacters:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(API_PREFIXES):
            if "\x00" in request.path:
                return _refused("", "The path must not contain a NUL character.")
            for name, values in request.GET.lists():
                if "\x00" in name or any("\x00" in value for value in values):
                    return _refused(name.replace("\x00", ""), "must not contain a NUL character")
        return self.get_response(request)


def _refused(field: str, message: str) -> JsonResponse:
    text = f"{field}: {message}" if field else message
    return JsonResponse(
        error_body("validation_error", text, [{"field": field, "message": message}]), status=400
    )
