"""/metrics, behind an optional bearer token (FDM_METRICS_TOKEN).

The figures name every table and how its syncs fare; when the token is set, a scrape must send
`Authorization: Bearer <token>` (Prometheus: `authorization: {credentials: ...}` in the scrape config).
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_prometheus import exports


def metrics(request: HttpRequest) -> HttpResponse:
    token: str | None = settings.FDM_METRICS_TOKEN
    if token and not _bearer_matches(request, token):
        response = HttpResponse("401 Unauthorized: /metrics needs its bearer token\n", status=401)
        response["Content-Type"] = "text/plain; charset=utf-8"
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return exports.ExportToDjangoView(request)


def _bearer_matches(request: HttpRequest, token: str) -> bool:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    # Constant time: how much of a guess was right must not show in how long the answer takes.
    return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token.encode())
