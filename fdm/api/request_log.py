"""One log line per API or admin request: method, path, status, duration, and who asked.

Who: the user's name, and for a request made with an API key the key's name (never the key, which is only
ever in the Authorization header, and that is not logged). The path is logged without its query string: a
query may filter on an encrypted column (`?iban=NL91...`), and its values are the very data the encryption
protects; only the names of the query parameters are kept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from fdm.api.client_ip import client_ip

logger = logging.getLogger("fdm.request")

LOGGED_PREFIXES = ("/api/", "/admin/")


class RequestLog:
    """Middleware: place it first, so that the duration covers the whole of Django's handling."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(LOGGED_PREFIXES):
            return self.get_response(request)
        started = time.perf_counter()
        response = self.get_response(request)
        fields = request_fields(request, response, duration_ms=(time.perf_counter() - started) * 1000)
        level = logging.ERROR if response.status_code >= 500 else logging.INFO
        who = fields.get("key_name") and f"key {fields['key_name']}" or fields.get("user") or "anonymous"
        logger.log(
            level,
            "%s %s %s %.1fms %s",
            fields["method"],
            fields["path"],
            fields["status"],
            fields["duration_ms"],
            who,
            extra=fields,
        )
        return response


def request_fields(request: HttpRequest, response: HttpResponse, *, duration_ms: float) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "method": request.method,
        "path": request.path,
        "status": response.status_code,
        "duration_ms": round(duration_ms, 1),
        "client": client_ip(request),
    }
    if request.GET:
        fields["query_params"] = sorted(request.GET.keys())
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        fields["user"] = user.get_username()
    key_name = getattr(getattr(request, "auth", None), "name", None)
    if isinstance(key_name, str):
        fields["key_name"] = key_name
    return fields
