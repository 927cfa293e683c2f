"""The stale-run reaper: fails runs that will never finish by themselves, because their worker is gone or no
worker took them. The task queue runs it every FDM_REAPER_INTERVAL_MINUTES (`tasks.reap_stale_runs`)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import psycopg
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_q.models import Schedule

from syncengine import connections
from syncengine.choices import ErrorKind, RunStatus
from syncengine.models import SyncRun
from syncengine.services import RETRY_SCHEDULE_PREFIX

logger = logging.getLogger("syncengine.runs")


def runs_fail_stale(*, now: datetime | None = None) -> list[SyncRun]:
    """Fail runs that will never finish by themselves; returns them.

    1. Running runs with no sign of life (heartbeat, or start) for longer than the task timeout plus
       `FDM_RUN_STALE_GRACE_SECONDS`: the task queue stops any task at its timeout, so the worker was killed
       (out of memory, SIGKILL, a lost machine). The pipeline publishes in one transaction, so the target
       still holds what it held before the run; the next scheduled run picks up from the same watermark.
    2. Running runs silent for `FDM_RUN_ORPHAN_GRACE_SECONDS` whose table lock nobody holds in the target
       database: a run holds that lock from its start to its end on its own session, so its process is gone
       (the session ended with it). This finds a killed worker in minutes rather than after the task timeout.
       An unreachable target leaves these to rule 1. A run that releases its lock just as it is checked
       saves its own outcome right after, over the reaper's.
    3. Queued runs that no worker took within `FDM_RUN_QUEUED_MAX_AGE` seconds of being due: no worker is
       running, or their task was lost.
    Each is locked (skipping rows another reaper holds) and re-checked, then failed as transient.
    """
    now = now or timezone.now()
    timeout = settings.SYNC_TIMEOUT_SECONDS
    stale_cutoff = now - timedelta(seconds=timeout + settings.FDM_RUN_STALE_GRACE_SECONDS)
    queued_cutoff = now - timedelta(seconds=settings.FDM_RUN_QUEUED_MAX_AGE)
    failed: list[SyncRun] = []
    with transaction.atomic():
        for silent in _running_silent_since(stale_cutoff):
            last_seen = silent.last_seen
            message = (
                f"{silent.table_name}: the worker stopped reporting at {last_seen:%Y-%m-%d %H:%M:%S %Z} and is "
                f"presumed dead (killed, out of memory, or stopped at the {timeout}s task timeout); "
                "nothing was published by this run"
            )
            silent.append_log("error", message, last_seen=last_seen.isoformat(), executor=silent.executor)
            silent.finish(RunStatus.FAILED, message=message, error_kind=ErrorKind.TRANSIENT)
            failed.append(silent)
        failed.extend(_fail_orphaned_runs(now=now, exclude={run.pk for run in failed}))
        stale_queued = (
            SyncRun.objects.select_for_update(skip_locked=True)
            .annotate(due=Coalesce("not_before", "queued_at"))
            .filter(status=RunStatus.QUEUED, due__lt=queued_cutoff)
        )
        for untaken in stale_queued:
            message = (
                f"{untaken.table_name}: no worker started this run within "
                f"{settings.FDM_RUN_QUEUED_MAX_AGE}s of {untaken.due:%Y-%m-%d %H:%M:%S %Z}; "
                "is `manage.py qcluster` running?"
            )
            untaken.append_log("error", message)
            untaken.finish(RunStatus.FAILED, message=message, error_kind=ErrorKind.TRANSIENT)
            Schedule.objects.filter(name=f"{RETRY_SCHEDULE_PREFIX}{untaken.pk}").delete()
            failed.append(untaken)
    for run in failed:
        logger.warning("%s", run.error_message)
    return failed


def _running_silent_since(cutoff: datetime) -> QuerySet[Any]:  # runs annotated with last_seen
    """Running runs with no sign of life (heartbeat, else start) since `cutoff`, locked for the reaper; rows
    another reaper holds are skipped. Each carries its `last_seen`."""
    return (
        SyncRun.objects.select_for_update(skip_locked=True)
        .annotate(last_seen=Coalesce("heartbeat_at", "started_at", "queued_at"))
        .filter(status=RunStatus.RUNNING, last_seen__lt=cutoff)
    )


def _fail_orphaned_runs(*, now: datetime, exclude: set[int]) -> list[SyncRun]:
    """Rule 2 of `runs_fail_stale`, inside its transaction."""
    from syncengine.pipeline.locks import held_table_lock_keys, table_lock_key

    cutoff = now - timedelta(seconds=settings.FDM_RUN_ORPHAN_GRACE_SECONDS)
    silent = list(_running_silent_since(cutoff).exclude(pk__in=exclude))
    if not silent:
        return []
    try:
        with psycopg.connect(connections.target_dsn(), connect_timeout=10, autocommit=True) as target:
            held = held_table_lock_keys(target)
    except psycopg.Error as exc:
        logger.warning("reaper: cannot read locks in the target database (%s)", type(exc).__name__)
        return []
    orphaned: list[SyncRun] = []
    for run in silent:
        if table_lock_key(run.table_name) in held:
            continue  # still at work: a long publish or a slow source query sends no heartbeat
        message = (
            f"{run.table_name}: the worker's session ended at or after {run.last_seen:%Y-%m-%d %H:%M:%S %Z} "
            "without recording an outcome (the table's lock in the target database is free); the worker is "
            "presumed dead and nothing was published by this run"
        )
        run.append_log("error", message, last_seen=run.last_seen.isoformat(), executor=run.executor)
        run.finish(RunStatus.FAILED, message=message, error_kind=ErrorKind.TRANSIENT)
        orphaned.append(run)
    return orphaned
