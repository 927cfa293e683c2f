"""The engine's readiness checks, registered with `/health/ready` (fdm.api.health) by SyncEngineConfig.ready():
the target database, Snowflake (a login and `SELECT 1`), workers (a task finished recently: the stale-run
reaper runs every FDM_REAPER_INTERVAL_MINUTES, so a live cluster always finishes one), and freshness (no enabled
table past its `max_staleness_minutes`)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import psycopg
from django.conf import settings
from django.db.models import Max
from django.utils import timezone
from django_q.models import Task

from fdm.api.health import CHECK_TIMEOUT_SECONDS, CheckResult, register_check
from syncengine import connections, selectors


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


def register() -> None:
    """Add the engine's checks after fdm's own (the database), in the order the readiness body lists them."""
    register_check("target_database", check_target_database)
    register_check("snowflake", check_snowflake)
    register_check("workers", check_workers)
    register_check("freshness", check_freshness)
