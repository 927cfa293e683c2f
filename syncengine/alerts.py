"""What the engine reports to fdm's notification channels (`fdm.notifications`): failed runs, tables stale past
their freshness limit, and key rotations that stopped moving.

- Run failed: a run that ends failed opens its table's `run_failed` incident; the table's next successful run
  resolves it. A run stopped by the delete guard (`DeleteGuardTripped`) also opens `delete_guard`, which the
  next success resolves too (an operator allowed the deletes, or the source is whole again). This happens when the run's outcome is saved (`run_saved`, connected in `SyncEngineConfig`), and
  again on every check from each table's latest outcome, which also catches runs closed without a model save.
- Table stale: on every check (FDM_NOTIFY_CHECK_MINUTES), a table past `max_staleness_minutes` (`Freshness`)
  opens `table_stale`; fresh again, disabled, without a limit or deleted, it resolves.
- Key rotation stuck: nothing records a rotation as it goes (`rotate_keys` works in batches and keeps no state),
  so progress is read from the data: every FDM_ROTATION_CHECK_MINUTES, the values of each encrypting table still
  on an older key or format are counted (`rotation.key_usage`, one scan per encrypted column). A count above
  zero that has not moved for FDM_ROTATION_STUCK_MINUTES opens `key_rotation_stuck`; it resolves when the count
  reaches zero or moves again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone
from django_q.models import Schedule

from fdm.notifications.choices import IncidentKind
from fdm.notifications.selectors import observation_list, open_incident_keys
from fdm.notifications.services import (
    incident_open,
    incident_resolve,
    observation_clear,
    observation_record,
)
from syncconfig.choices import EncryptionMode
from syncconfig.models import TableConfig
from syncengine import connections, protected_data
from syncengine.choices import RunStatus
from syncengine.models import SyncRun
from syncengine.pipeline.errors import PipelineError
from syncengine.pipeline.protection.keyring import KeyringError
from syncengine.selectors import TableStatus, table_statuses

logger = logging.getLogger("syncengine.alerts")

CHECK_SCHEDULE_NAME = "fdm-alerts"
CHECK_TASK = "syncengine.alerts.check_task"
ROTATION_SCHEDULE_NAME = "fdm-rotation-watch"
ROTATION_TASK = "syncengine.alerts.rotation_task"


def check_task() -> dict[str, int]:
    return alerts_check()


def rotation_task() -> dict[str, int]:
    return rotations_check()


def run_saved(sender: type, instance: SyncRun, update_fields: Any = None, **kwargs: Any) -> None:
    """post_save of a run: once a failure or a success is committed, open or resolve its table's incident.

    Never lets a notification problem fail the save of a run's outcome: it is logged, and the next check
    catches up from the table's latest outcome.
    """
    if instance.status not in (RunStatus.FAILED, RunStatus.SUCCEEDED):
        return
    if update_fields is not None and "status" not in update_fields:
        return  # a log line appended to a finished run, not its outcome
    run_id = instance.pk

    def notify() -> None:
        try:
            run_outcome_notify(run_id=run_id)
        except Exception:
            logger.exception("run #%s: cannot record its incident; the next check will", run_id)

    transaction.on_commit(notify)


def run_outcome_notify(*, run_id: int) -> None:
    """Open the table's `run_failed` incident for a failed run, resolve it for a succeeded one; a run that is
    no longer its table's latest outcome changes nothing."""
    run = SyncRun.objects.filter(pk=run_id).first()
    if run is None:
        return
    latest = (
        SyncRun.objects.filter(table_name=run.table_name, status__in=RunStatus.outcomes())
        .order_by("-finished_at", "-id")
        .values_list("pk", flat=True)
        .first()
    )
    if latest != run.pk:
        return
    if run.status == RunStatus.FAILED:
        _run_failed_open(run)
    elif run.status == RunStatus.SUCCEEDED:
        _run_failed_resolve(run)


def alerts_check(*, now: datetime | None = None) -> dict[str, int]:
    """Bring `run_failed` and `table_stale` incidents in step with every table's latest outcome and freshness."""
    now = now or timezone.now()
    failing = open_incident_keys(kind=IncidentKind.RUN_FAILED)
    stale = open_incident_keys(kind=IncidentKind.TABLE_STALE)
    statuses = table_statuses(tables=TableConfig.objects.all(), now=now, with_state=True)
    for status in statuses:
        name = status.table.name
        outcome = status.last_run
        if outcome is not None and outcome.status == RunStatus.FAILED and name not in failing:
            _run_failed_open(outcome)
        elif outcome is not None and outcome.status == RunStatus.SUCCEEDED and name in failing:
            _run_failed_resolve(outcome)
        if status.freshness.past_limit:
            _stale_open(status)
        elif name in stale:
            incident_resolve(
                kind=IncidentKind.TABLE_STALE, key=name, resolution=_fresh_again(status), now=now
            )
    names = {status.table.name for status in statuses}
    for kind, keys in ((IncidentKind.RUN_FAILED, failing), (IncidentKind.TABLE_STALE, stale)):
        for gone in sorted(keys - names):
            incident_resolve(kind=kind, key=gone, resolution="the table's configuration was deleted", now=now)
    return {
        "failing": len(open_incident_keys(kind=IncidentKind.RUN_FAILED)),
        "stale": len(open_incident_keys(kind=IncidentKind.TABLE_STALE)),
    }


def rotations_check(*, now: datetime | None = None) -> dict[str, int]:
    """Count each encrypting table's values left on older keys or formats, and open or resolve its
    `key_rotation_stuck` incident (see the module's docstring). Without a keyring there is nothing to rotate to."""
    now = now or timezone.now()
    try:
        keyring = connections.keyring(required=False)
    except KeyringError as exc:
        logger.warning("key rotation check skipped: %s", exc)
        return {"checked": 0, "stuck": 0}
    if keyring is None:
        return {"checked": 0, "stuck": 0}
    checked: set[str] = set()
    for table in TableConfig.objects.exclude(encryption_mode=EncryptionMode.OFF).order_by("name"):
        try:
            usage = protected_data.table_key_usage(table=table)
        except (psycopg.Error, PipelineError) as exc:
            logger.warning("%s: cannot count the keys of its encrypted values: %s", table.name, exc)
            continue
        checked.add(table.name)
        _rotation_observe(table.name, remaining=usage.remaining if usage else 0, usage=usage, now=now)
    for gone in sorted(open_incident_keys(kind=IncidentKind.KEY_ROTATION_STUCK) - checked):
        observation_clear(kind=IncidentKind.KEY_ROTATION_STUCK, key=gone)
        incident_resolve(
            kind=IncidentKind.KEY_ROTATION_STUCK, key=gone, resolution="the table no longer encrypts", now=now
        )
    return {"checked": len(checked), "stuck": len(open_incident_keys(kind=IncidentKind.KEY_ROTATION_STUCK))}


@dataclass(frozen=True)
class RotationUnderWay:
    """An encrypting table with values still on older keys or formats, as the latest rotation check counted."""

    table: str
    remaining: int
    since: datetime  # when the count last changed
    checked_at: datetime
    stuck: bool  # unchanged for FDM_ROTATION_STUCK_MINUTES


def rotations_under_way(*, now: datetime) -> list[RotationUnderWay]:
    """What the rotation check saw last (one query): tables with values left to rotate, the stuck ones first."""
    stuck_after = timedelta(minutes=settings.FDM_ROTATION_STUCK_MINUTES)
    found = [
        RotationUnderWay(
            table=observation.key,
            remaining=int(observation.value),
            since=observation.since,
            checked_at=observation.seen_at,
            stuck=now - observation.since >= stuck_after,
        )
        for observation in observation_list(kind=IncidentKind.KEY_ROTATION_STUCK)
    ]
    return sorted(found, key=lambda rotation: (not rotation.stuck, rotation.table))


def alerts_schedules_ensure(*, using: str = DEFAULT_DB_ALIAS) -> None:
    """One schedule for the checks every FDM_NOTIFY_CHECK_MINUTES, and one for key rotations every
    FDM_ROTATION_CHECK_MINUTES (none when 0). Run after `migrate` and by `sync_schedules`."""
    _schedule_ensure(CHECK_TASK, CHECK_SCHEDULE_NAME, settings.FDM_NOTIFY_CHECK_MINUTES, using=using)
    _schedule_ensure(ROTATION_TASK, ROTATION_SCHEDULE_NAME, settings.FDM_ROTATION_CHECK_MINUTES, using=using)


DELETE_GUARD_FAILURE = "DeleteGuardTripped"


def _run_failed_open(run: SyncRun) -> None:
    kind = f" ({run.error_kind})" if run.error_kind else ""
    incident_open(
        kind=IncidentKind.RUN_FAILED,
        key=run.table_name,
        table=run.table_name,
        title=f"Sync of {run.table_name} failed",
        detail=f"Run #{run.pk}, attempt {run.attempt}, failed{kind}: {run.error_message}",
    )
    if (run.checks or {}).get("failure") == DELETE_GUARD_FAILURE:
        incident_open(
            kind=IncidentKind.DELETE_GUARD,
            key=run.table_name,
            table=run.table_name,
            title=f"Delete guard stopped a sync of {run.table_name}",
            detail=f"Run #{run.pk}: {run.error_message}",
        )


def _run_failed_resolve(run: SyncRun) -> None:
    finished = f" at {run.finished_at:%Y-%m-%d %H:%M:%S} UTC" if run.finished_at else ""
    resolution = f"Run #{run.pk} succeeded{finished}."
    incident_resolve(kind=IncidentKind.RUN_FAILED, key=run.table_name, resolution=resolution)
    incident_resolve(kind=IncidentKind.DELETE_GUARD, key=run.table_name, resolution=resolution)


def _stale_open(status: TableStatus) -> None:
    table, freshness = status.table, status.freshness
    since = (
        "its last successful run finished" if freshness.ever_succeeded else "it was configured (no success)"
    )
    incident_open(
        kind=IncidentKind.TABLE_STALE,
        key=table.name,
        table=table.name,
        title=f"{table.name} is stale",
        detail=f"{_minutes(freshness.seconds)} since {since} at {freshness.since:%Y-%m-%d %H:%M} UTC; "
        f"its freshness limit is {table.max_staleness_minutes} minutes.",
    )


def _fresh_again(status: TableStatus) -> str:
    if not status.table.enabled:
        return "the table was disabled"
    if status.table.max_staleness_minutes is None:
        return "the table's freshness limit was removed"
    return f"fresh again: {_minutes(status.freshness.seconds)} old, within its limit"


def _rotation_observe(name: str, *, remaining: int, usage: Any, now: datetime) -> None:
    kind = IncidentKind.KEY_ROTATION_STUCK
    if remaining == 0:
        observation_clear(kind=kind, key=name)
        incident_resolve(kind=kind, key=name, resolution="every value is on the primary key", now=now)
        return
    observation = observation_record(kind=kind, key=name, value=str(remaining), now=now)
    stalled = now - observation.since
    if stalled < timedelta(minutes=settings.FDM_ROTATION_STUCK_MINUTES):
        incident_resolve(kind=kind, key=name, resolution=f"moving again: {remaining} value(s) left", now=now)
        return
    spread = "; ".join(
        f"{column}: " + ", ".join(f"{key_id} {count}" for key_id, count in counts.items())
        for column, counts in usage.columns.items()
    )
    incident_open(
        kind=kind,
        key=name,
        table=name,
        title=f"Key rotation of {name} is stuck",
        detail=f"{remaining} value(s) still on older keys or formats ({spread}), unchanged for "
        f"{_minutes(stalled.total_seconds())}. Run `manage.py rotate_keys --table {name}`.",
    )


def _minutes(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def _schedule_ensure(func: str, name: str, minutes: int, *, using: str) -> None:
    with transaction.atomic(using=using):
        existing = list(Schedule.objects.using(using).select_for_update().filter(func=func).order_by("id"))
        for extra in existing[1:] if minutes else existing:
            extra.delete()
        if not minutes:
            return
        schedule = existing[0] if existing else Schedule(func=func, next_run=timezone.now())
        wanted = (Schedule.MINUTES, minutes, name, -1)
        if (
            schedule.pk
            and (schedule.schedule_type, schedule.minutes, schedule.name, schedule.repeats) == wanted
        ):
            return
        schedule.schedule_type, schedule.minutes, schedule.name, schedule.repeats = wanted
        schedule.save(using=using)
