"""Liveness and readiness for load balancers and Kubernetes.

- `/health/live`: the process answers; always 200 `{"status": "ok"}`, without authentication, touching nothing.
- `/health/ready`: 200 when every check passes, 503 otherwise. Checks: Django's database, the target database,
  Snowflake (a login and `SELECT 1`), workers (a task finished recently: the stale-run reaper runs every
  FDM_REAPER_INTERVAL_MINUTES, so a live cluster always finishes one), and freshness (no enabled table past its
  `max_staleness_minutes`). A probe without credentials gets only the overall status, since probes (load
  balancers, kubelets) cannot keep a secret; a viewer or above also gets each check with its message, which
  may name tables and hosts. Results are kept FDM_READY_CACHE_SECONDS, so that frequent probes do not open a
  Snowflake session each.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection
from django.db.models import Max
from django.utils import timezone
from django_q.models import Task
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from fdm.api.roles import Role, has_role
from syncengine import connections, selectors

CHECK_TIMEOUT_SECONDS = 5


@dataclasses.dataclass(frozen=True)
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


def check_target_database() -> CheckResult:
    with psycopg.connect(connections.target_dsn(), connect_timeout=CHECK_TIMEOUT_SECONDS) as conn:
        conn.execute("SELECT 1")
    return CheckResult("target_database", True, "reachable")


def check_snowflake() -> CheckResult:
    source = dataclasses.replace(
        connections.snowflake_settings(),
        login_timeout=CHECK_TIMEOUT_SECONDS * 2,
        network_timeout=CHECK_TIMEOUT_SECONDS * 2,
    )
    conn = source.connect()
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT 1")
        cursor.close()
    finally:
        conn.close()
    return CheckResult("snowflake", True, f"reachable at {source.where}")


def check_workers() -> CheckResult:
    silence = timedelta(minutes=settings.FDM_REAPER_INTERVAL_MINUTES * 3)
    last = Task.objects.aggregate(last=Max("stopped"))["last"]
    if last is None:
        return CheckResult(
            "workers", False, "no worker has finished a task yet; is `manage.py qcluster` running?"
        )
    age = timezone.now() - last
    if age > silence:
        return CheckResult(
            "workers",
            False,
            f"no task finished for {int(age.total_seconds())}s (limit {int(silence.total_seconds())}s); "
            "is `manage.py qcluster` running?",
        )
    return CheckResult("workers", True, f"last task finished {int(age.total_seconds())}s ago")


def check_freshness() -> CheckResult:
    stale = selectors.tables_past_freshness(now=timezone.now())
    if stale:
        names = ", ".join(f"{table.name} (since {since:%Y-%m-%d %H:%M %Z})" for table, since in stale)
        return CheckResult("freshness", False, f"past their freshness limit: {names}")
    return CheckResult("freshness", True, "every table is within its freshness limit")


CHECKS: tuple[tuple[str, Callable[[], CheckResult]], ...] = (
    ("database", check_database),
    ("target_database", check_target_database),
    ("snowflake", check_snowflake),
    ("workers", check_workers),
    ("freshness", check_freshness),
)

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
    for name, check in CHECKS:
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
