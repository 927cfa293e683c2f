"""Request rates per API key.

Counts live in Django's cache: the default local-memory cache counts per web process, so with N gunicorn
workers a key gets up to N times the rate; configure a shared cache (CACHES) for one count across processes.
Sessions (people in the browsable API or the docs) are not throttled, and requests without valid credentials
are refused (401) before any throttle is consulted: a key has 256 random bits, far beyond guessing.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from fdm.apikeys.models import ApiKey


class ApiKeyRateThrottle(SimpleRateThrottle):
    """FDM_API_KEY_RATE (e.g. "600/min") per API key."""

    scope = "api_key"  # type: ignore[assignment]  # DRF declares it None

    def get_rate(self) -> str | None:
        return settings.FDM_API_KEY_RATE or None

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if not isinstance(request.auth, ApiKey):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}
