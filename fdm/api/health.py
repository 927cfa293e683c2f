"""Liveness and readiness for load balancers and Kubernetes.

- `/health/live`: the process answers; always 200 `{"status": "ok"}`, without authentication, touching nothing.
- `/health/ready`: 200 when every check passes, 503 otherwise. Checks: Django's database here, and those the
  apps register (`register_check`; the engine's, in `syncengine.health`: the target database, the task broker
  and workers). Readiness is about the service only: data freshness and the source's reachability stay out of
  it, so that a stale table never takes the admin out of service. A probe without credentials gets only the overall status, since probes (load
  balancers, kubelets) cannot keep a secret; a viewer or above also gets each check with its message, which
  may name tables and hosts. Results are kept FDM_READY_CACHE_SECONDS, so that frequent probes do not open a
  Snowflake session each.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from fdm.api.roles import Role, has_role

CHECK_TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"status": "ok" if self.ok else "failing", "message": self.message}


def check_database() -> CheckResult:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return CheckResult("database", True, "reachable")


# The checks, by name, in the order they run and are shown. Apps add theirs with `register_check`.
CHECKS: dict[str, Callable[[], CheckResult]] = {"database": check_database}


def register_check(name: str, check: Callable[[], CheckResult]) -> None:
    """Add (or replace) a readiness check; it returns a CheckResult or raises, which fails it."""
    CHECKS[name] = check


_cache_lock = threading.Lock()
_cached: tuple[float, list[CheckResult]] | None = None


def run_checks() -> list[CheckResult]:
    """Every check's result; a check that raises fails with the exception's first line (never its secrets:
    connection errors name hosts and settings, not passwords)."""
    global _cached
    ttl = settings.FDM_READY_CACHE_SECONDS
    with _cache_lock:
        if _cached is not None and ttl > 0 and time.monotonic() - _cached[0] < ttl:
            return _cached[1]
    results = []
    for name, check in CHECKS.items():
        try:
            results.append(check())
        except Exception as exc:
            text = str(exc).strip().splitlines()
            results.append(CheckResult(name, False, text[0] if text else type(exc).__name__))
    with _cache_lock:
        _cached = (time.monotonic(), results)
    return results


_STATUS_ONLY = inline_serializer(
    "HealthStatus", {"status": serializers.ChoiceField(choices=["ok", "unavailable"])}
)
_CHECK = inline_serializer(
    "HealthCheck",
    {"status": serializers.ChoiceField(choices=["ok", "failing"]), "message": serializers.CharField()},
)
_READY = inline_serializer(
    "Readiness",
    {
        "status": serializers.ChoiceField(choices=["ok", "unavailable"]),
        "checks": serializers.DictField(
            child=_CHECK, required=False, help_text="Only for viewers and above."
        ),
    },
)


class LiveView(APIView):
    """The process is up."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []

    @extend_schema(responses={200: _STATUS_ONLY}, auth=[], tags=["health"], summary="Liveness")
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


class ReadyView(APIView):
    """Whether fdm can do its work; details for viewers and above."""

    permission_classes = [AllowAny]  # the overall status only; details need a role (see the module docstring)
    throttle_classes: list[Any] = []

    @extend_schema(responses={200: _READY, 503: _READY}, tags=["health"], summary="Readiness")
    def get(self, request: Request) -> Response:
        results = run_checks()
        ok = all(result.ok for result in results)
        body: dict[str, Any] = {"status": "ok" if ok else "unavailable"}
        if has_role(request.user, Role.VIEWER):
            body["checks"] = {result.name: result.as_dict() for result in results}
        return Response(body, status=200 if ok else 503)
