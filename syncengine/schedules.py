"""Each enabled, scheduled table has exactly one django-q2 Schedule; this module keeps them in step.

A table's schedule is found by its function and argument (the table's id), not by its name, so that
renaming a table updates its schedule instead of leaving the old one behind. The name,
`fdm-sync:<table name>`, is for people reading the task queue's admin.

`hourly` and `daily` become django-q2's HOURLY and DAILY, anchored to the top of the hour and to midnight
(in TIME_ZONE) so that runs happen at predictable times; any other value is a cron expression.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from croniter import croniter
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone
from django_q.models import Schedule

from syncconfig.models import TableConfig

logger = logging.getLogger("syncengine.schedules")

SCHEDULE_NAME_PREFIX = "fdm-sync:"
SCHEDULED_SYNC_TASK = "syncengine.tasks.scheduled_sync"
RECONCILE_SCHEDULE_NAME_PREFIX = "fdm-reconcile:"
SCHEDULED_RECONCILE_TASK = "syncengine.tasks.scheduled_reconciliation"
REAPER_SCHEDULE_NAME = "fdm-reap-stale-runs"
REAPER_TASK = "syncengine.tasks.reap_stale_runs"

# Where the first run of an interval schedule falls; django-q2 then adds the interval to it.
_ANCHORS = {Schedule.HOURLY: "0 * * * *", Schedule.DAILY: "0 0 * * *"}


@dataclass(frozen=True)
class ScheduleShape:
    """What a table's Schedule must look like: django-q2's type, and the cron expression for CRON."""

    schedule_type: str
    cron: str | None = None

    def first_run(self, now: datetime) -> datetime:
        expression = self.cron if self.cron is not None else _ANCHORS[self.schedule_type]
        base = timezone.localtime(now)
        return croniter(expression, base).get_next(datetime)


@dataclass
class SyncReport:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0


def schedule_name(table: TableConfig) -> str:
    return f"{SCHEDULE_NAME_PREFIX}{table.name}"[:100]  # Schedule.name holds 100 characters


def shape_for(table: TableConfig) -> ScheduleShape | None:
    """The Schedule a table's syncs need, or None (disabled, `manual`, or an expression cron cannot read)."""
    return _shape(table, table.schedule)


def reconcile_shape_for(table: TableConfig) -> ScheduleShape | None:
    """The Schedule of a table's deep reconciliations (`reconcile.schedule`; blank: none)."""
    return _shape(table, table.reconcile_schedule)


def _shape(table: TableConfig, schedule: str | None) -> ScheduleShape | None:
    if not table.enabled:
        return None
    value = (schedule or "").strip()
    lowered = value.lower()
    if lowered in {"", "manual"}:
        return None
    if lowered == "hourly":
        return ScheduleShape(Schedule.HOURLY)
    if lowered == "daily":
        return ScheduleShape(Schedule.DAILY)
    if croniter.is_valid(value):
        return ScheduleShape(Schedule.CRON, value)
    # The configuration schema rejects such values; one that slipped past must not break a save.
    logger.error("table %s: schedule %r is not hourly, daily, manual or a cron expression", table.name, value)
    return None


def table_schedule_sync(
    *, table: TableConfig, now: datetime | None = None, using: str = DEFAULT_DB_ALIAS
) -> str:
    """Create, update or delete the table's Schedules (its syncs', and its deep reconciliations' next to it)
    to match its configuration; returns what happened to the sync schedule."""
    now = now or timezone.now()
    reconcile = _Wanted(
        SCHEDULED_RECONCILE_TASK,
        f"{RECONCILE_SCHEDULE_NAME_PREFIX}{table.name}"[:100],
        reconcile_shape_for(table),
    )
    _schedule_sync(table, reconcile, now=now, using=using)
    return _schedule_sync(
        table, _Wanted(SCHEDULED_SYNC_TASK, schedule_name(table), shape_for(table)), now=now, using=using
    )


@dataclass(frozen=True)
class _Wanted:
    func: str
    name: str
    shape: ScheduleShape | None


def _schedule_sync(table: TableConfig, wanted: _Wanted, *, now: datetime, using: str) -> str:
    """Create, update or delete one of the table's Schedules.

    1. Lock the table's existing schedules of that task (normally zero or one); delete any duplicates.
    2. No schedule wanted (disabled or manual): delete it.
    3. Otherwise create it, or update it in place. Its next run is recomputed only when the timing
       changed, so that saving an unrelated setting does not move the next run.
    Returns "created", "updated", "deleted" or "unchanged".
    """
    shape, func = wanted.shape, wanted.func
    with transaction.atomic(using=using):
        existing = list(
            Schedule.objects.using(using)
            .select_for_update()
            .filter(func=func, args=str(table.pk))
            .order_by("id")
        )
        schedule = existing[0] if existing else None
        extras = [s.pk for s in existing[1:]]
        if extras:
            Schedule.objects.using(using).filter(pk__in=extras).delete()
        if shape is None:
            if schedule is None:
                return "deleted" if extras else "unchanged"
            schedule.delete()
            return "deleted"
        name = wanted.name
        if schedule is None:
            Schedule(
                name=name,
                func=func,
                args=str(table.pk),
                schedule_type=shape.schedule_type,
                cron=shape.cron,
                repeats=-1,
                next_run=shape.first_run(now),
            ).save(using=using)
            return "created"
        timing_changed = (
            schedule.schedule_type != shape.schedule_type or (schedule.cron or None) != shape.cron
        )
        if not timing_changed and schedule.name == name and schedule.repeats == -1 and schedule.next_run:
            return "updated" if extras else "unchanged"
        schedule.name = name
        schedule.schedule_type = shape.schedule_type
        schedule.cron = shape.cron
        schedule.minutes = None
        schedule.repeats = -1
        if timing_changed or schedule.next_run is None:
            schedule.next_run = shape.first_run(now)
        schedule.save(using=using)
        return "updated"


def tables_next_run(*, tables: Iterable[TableConfig]) -> dict[int, datetime]:
    """When each table's schedule fires next, by table id; tables without a schedule are left out."""
    rows = Schedule.objects.filter(func=SCHEDULED_SYNC_TASK, args__in=[str(table.pk) for table in tables])
    return {int(args): next_run for args, next_run in rows.values_list("args", "next_run") if next_run}


def table_schedule_delete(*, table_id: int, using: str = DEFAULT_DB_ALIAS) -> int:
    """Remove a table's schedule (its configuration was deleted); returns how many were removed."""
    tasks = (SCHEDULED_SYNC_TASK, SCHEDULED_RECONCILE_TASK)
    deleted, _ = Schedule.objects.using(using).filter(func__in=tasks, args=str(table_id)).delete()
    return deleted


def schedules_sync_all(*, now: datetime | None = None) -> SyncReport:
    """Bring every table's Schedule in step and remove schedules of tables that no longer exist.

    Repairs drift left by writes that bypass model signals (bulk updates, raw SQL, a restored backup), and
    makes sure the reaper, the maintenance jobs and the alert checks are scheduled.
    """
    report = SyncReport()
    with transaction.atomic():
        tables = list(TableConfig.objects.order_by("pk"))
        for table in tables:
            outcome = table_schedule_sync(table=table, now=now)
            setattr(report, outcome, getattr(report, outcome) + 1)
        known_ids = {str(table.pk) for table in tables}
        orphans = Schedule.objects.filter(func=SCHEDULED_SYNC_TASK).exclude(args__in=known_ids)
        report.deleted += orphans.count()
        orphans.delete()
        Schedule.objects.filter(func=SCHEDULED_RECONCILE_TASK).exclude(args__in=known_ids).delete()
        reaper_schedule_ensure()
        from syncengine.maintenance import maintenance_schedules_ensure  # it builds on this module

        maintenance_schedules_ensure()
        from syncengine.alerts import alerts_schedules_ensure

        alerts_schedules_ensure()
    return report


def reaper_schedule_ensure(*, using: str = DEFAULT_DB_ALIAS) -> Schedule:
    """Make sure exactly one schedule runs the stale-run reaper every FDM_REAPER_INTERVAL_MINUTES."""
    minutes = settings.FDM_REAPER_INTERVAL_MINUTES
    with transaction.atomic(using=using):
        existing = list(
            Schedule.objects.using(using).select_for_update().filter(func=REAPER_TASK).order_by("id")
        )
        for extra in existing[1:]:
            extra.delete()
        schedule = existing[0] if existing else None
        if schedule is None:
            schedule = Schedule(func=REAPER_TASK, next_run=timezone.now())
        elif (
            schedule.schedule_type == Schedule.MINUTES
            and schedule.minutes == minutes
            and schedule.name == REAPER_SCHEDULE_NAME
            and schedule.repeats == -1
        ):
            return schedule
        schedule.name = REAPER_SCHEDULE_NAME
        schedule.schedule_type = Schedule.MINUTES
        schedule.minutes = minutes
        schedule.repeats = -1
        schedule.save(using=using)
        return schedule
