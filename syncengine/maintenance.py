"""Housekeeping on schedules: scheduled backups, the purge of old runs, and staging tables nobody will drop.

Each job has one django-q2 schedule, kept in step with its settings by `maintenance_schedules_ensure` (run
after `migrate` and by `sync_schedules`, like the reaper's). The functions named `*_task` are what the schedules
call; they hand over to the services here at once.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone
from django_q.models import Schedule

from syncconfig.models import TableConfig
from syncengine import backups, connections, services
from syncengine.choices import RunStatus
from syncengine.models import SyncRun
from syncengine.pipeline.identifiers import quote_postgres
from syncengine.pipeline.load import STAGING_SCHEMA, drop_leftover_staging, staging_prefix
from syncengine.pipeline.locks import try_lock_table, unlock_table
from syncengine.pipeline.postgres import connect
from syncengine.schedules import ScheduleShape

logger = logging.getLogger("syncengine.maintenance")

BACKUP_SCHEDULE_NAME = "fdm-backup"
BACKUP_TASK = "syncengine.maintenance.backup_task"
HOUSEKEEPING_SCHEDULE_NAME = "fdm-housekeeping"
HOUSEKEEPING_TASK = "syncengine.maintenance.housekeeping_task"


def backup_task() -> dict[str, Any]:
    return backups.backup_scheduled()


def housekeeping_task() -> dict[str, Any]:
    return {"runs_purged": runs_purge_expired(), "staging_dropped": staging_drop_orphans()}


VACUUM_LOCK_TIMEOUT = "5s"


def table_vacuum_after_load(*, run: SyncRun) -> dict[str, Any]:
    """`VACUUM (ANALYZE)` the target a successful full load rewrote: its old row versions become free space and
    the planner's statistics describe the new rows at once, not whenever autovacuum comes by. Run by the
    process that ran the sync, right after recording its success.

    Done under the table's lock, so it never runs beside a sync of the table, and given up after
    VACUUM_LOCK_TIMEOUT when a session holds the table against it (DDL, an explicit LOCK): a busy table is
    skipped, and the next full load tries again. Never fails the run; noted in the run's log.
    """
    if run.table is None or run.status != RunStatus.SUCCEEDED:
        return {"vacuumed": False}
    table = run.table
    try:
        seconds = _vacuum(table)
    except Exception as exc:  # the data is published: a missed vacuum is autovacuum's to catch up
        run.append_log(
            "warning", "vacuum after the full load skipped", reason=str(exc).strip().splitlines()[0]
        )
        return {"vacuumed": False}
    if seconds is None:
        run.append_log("info", "vacuum skipped: another run holds the table")
        return {"vacuumed": False}
    run.append_log("info", "vacuumed and analyzed the target after the full load", seconds=round(seconds, 3))
    return {"vacuumed": True, "table": table.name, "seconds": seconds}


def _vacuum(table: TableConfig) -> float | None:
    """Seconds the vacuum took, or None when a run holds the table."""
    with connect(connections.target_dsn(), application_name=f"fdm vacuum {table.name}") as conn:
        conn.autocommit = True  # VACUUM cannot run inside a transaction
        if not try_lock_table(conn, table.name):
            return None
        try:
            conn.execute("SELECT set_config('lock_timeout', %s, false)", (VACUUM_LOCK_TIMEOUT,))
            started = timezone.now()
            conn.execute(
                f"VACUUM (ANALYZE) {quote_postgres(table.postgres_schema)}.{quote_postgres(table.postgres_table)}"
            )
            return (timezone.now() - started).total_seconds()
        finally:
            unlock_table(conn, table.name)


def runs_purge_expired() -> int:
    """Delete finished runs older than FDM_RUN_RETENTION_DAYS (none when it is unset)."""
    days = settings.FDM_RUN_RETENTION_DAYS
    if not days:
        return 0
    purged = services.runs_purge(older_than=timezone.now() - timedelta(days=days))
    logger.info("purged %s finished runs older than %s days", purged, days)
    return purged


def staging_drop_orphans() -> list[str]:
    """Drop staging tables that no run will drop: those of tables that no longer run (a run drops its own, and
    the next run of a table drops what an interrupted one left). A table's staging tables are dropped under its
    lock, so a run in progress keeps its own; staging tables of no known table only while no run is active."""
    names = set(TableConfig.objects.values_list("name", flat=True))
    names |= set(SyncRun.objects.filter(status__in=RunStatus.active()).values_list("table_name", flat=True))
    any_active = SyncRun.objects.filter(status__in=RunStatus.active()).exists()
    dropped: list[str] = []
    with connect(connections.target_dsn(), application_name="fdm housekeeping") as conn:
        conn.autocommit = True
        staging = _staging_tables(conn)
        names |= _state_names(conn)
        for name in sorted(names):
            prefix = staging_prefix(name)
            if not any(table.startswith(prefix) for table in staging) or not try_lock_table(conn, name):
                continue
            try:
                dropped += drop_leftover_staging(conn, name)
            finally:
                unlock_table(conn, name)
        known = tuple(staging_prefix(name) for name in names)
        for table in staging if not any_active else []:
            if not table.startswith(known):
                conn.execute(f'DROP TABLE IF EXISTS "{STAGING_SCHEMA}"."{table}"')
                dropped.append(table)
    if dropped:
        logger.info("dropped %s orphaned staging tables", len(dropped))
    return sorted(dropped)


def _staging_tables(conn: Any) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = 'r'",
        (STAGING_SCHEMA,),
    ).fetchall()
    return [name for (name,) in rows]


def _state_names(conn: Any) -> set[str]:
    exists = conn.execute("SELECT to_regclass('_fdm.sync_state') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return set()
    return {name for (name,) in conn.execute("SELECT table_name FROM _fdm.sync_state").fetchall()}


def maintenance_schedules_ensure(*, using: str = DEFAULT_DB_ALIAS) -> None:
    """Exactly one schedule per job, matching the settings: backups when FDM_BACKUP_DIR is set (cron
    FDM_BACKUP_SCHEDULE), housekeeping daily at 03:30 UTC."""
    _schedule_ensure(
        BACKUP_TASK,
        BACKUP_SCHEDULE_NAME,
        settings.FDM_BACKUP_SCHEDULE,
        using=using,
        wanted=settings.FDM_BACKUP_DIR is not None,
    )
    _schedule_ensure(HOUSEKEEPING_TASK, HOUSEKEEPING_SCHEDULE_NAME, "30 3 * * *", using=using, wanted=True)


def _schedule_ensure(func: str, name: str, cron: str, *, using: str, wanted: bool) -> None:
    with transaction.atomic(using=using):
        existing = list(Schedule.objects.using(using).select_for_update().filter(func=func).order_by("id"))
        for extra in existing[1:] if wanted else existing:
            extra.delete()
        if not wanted:
            return
        schedule = existing[0] if existing else Schedule(func=func)
        if schedule.pk and schedule.cron == cron and schedule.name == name and schedule.repeats == -1:
            return
        schedule.name, schedule.schedule_type, schedule.cron, schedule.repeats = name, Schedule.CRON, cron, -1
        schedule.next_run = ScheduleShape(Schedule.CRON, cron).first_run(timezone.now())
        schedule.save(using=using)
