"""The engine's readiness checks, registered with `/health/ready` (fdm.api.health) by SyncEngineConfig.ready():
the target database, the task broker, and workers (a task finished recently: the stale-run reaper runs every
FDM_REAPER_INTERVAL_MINUTES, so a live cluster always finishes one).

Readiness describes this service, not the data or the systems it reads: a stale table or a Snowflake outage
must not take the web processes out of a load balancer's rotation, since that is exactly when an operator needs
the admin. Freshness is reported by `/metrics` (`fdm_table_freshness_seconds`, the `FdmTableStale` alert), the
admin's dashboard and the tables' status board; failing runs name an unreachable source."""

from __future__ import annotations

import psycopg
from django.conf import settings
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import OrmQ

from fdm.api.health import CHECK_TIMEOUT_SECONDS, CheckResult, register_check
from syncengine import connections, selectors


def check_target_database() -> CheckResult:
    with psycopg.connect(connections.target_dsn(), connect_timeout=CHECK_TIMEOUT_SECONDS) as conn:
        conn.execute("SELECT 1")
    return CheckResult("target_database", True, "reachable")


def check_broker() -> CheckResult:
    """The task queue answers: the ORM broker is a table in Django's database (counted, which also proves the
    table is there); Redis is pinged."""
    if settings.REDIS_URL:
        get_broker().ping()
        return CheckResult("broker", True, "Redis answers")
    waiting = OrmQ.objects.count()
    return CheckResult("broker", True, f"the database queue holds {waiting} task(s)")


def check_workers() -> CheckResult:
    silence = selectors.workers_silence_limit()
    last = selectors.workers_last_task_at()
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


def register() -> None:
    """Add the engine's checks after fdm's own (the database), in the order the readiness body lists them."""
    register_check("target_database", check_target_database)
    register_check("broker", check_broker)
    register_check("workers", check_workers)
