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
from django_q.models import OrmQ, Schedule

from syncengine import connections, recorder, services
from syncengine.choices import ErrorKind, RunStatus, RunTrigger, SliceStatus
from syncengine.models import FINISH_FIELDS, RunSlice, SyncRun
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
    Each is locked (skipping rows another reaper holds) and re-checked, then settled (`_settle_dead_run`): a
    running run whose publishing transaction committed (the target's state names it) is recorded as
    succeeded; any other is failed as transient, keeping its last heartbeat, its table's leftover staging
    tables are dropped when nobody holds the table, and a retry is queued while attempts remain (not for
    `sync_table` runs, which the operator re-runs).
    """
    now = now or timezone.now()
    slices_retry_dead(now=now)
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
            _settle_dead_run(silent, message)
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
        logger.warning("%s", run.error_message or f"run #{run.pk} of {run.table_name}: {run.status}")
        if (
            run.status == RunStatus.FAILED
            and run.started_at is not None
            and run.trigger != RunTrigger.COMMAND
        ):
            services.run_retry(run=run)
    leases_release_closed()
    return failed


def _settle_dead_run(run: SyncRun, message: str) -> None:
    """Close a running run whose process is gone: succeeded when the target's state shows its data
    committed, else failed (transient) with `message`. Its last heartbeat stays as it was."""
    target = connections.target_dsn()
    _delete_dead_task(run)
    published = recorder.published_by_run(run, target_dsn=target)
    if published is not None:
        recorder.record_published(run, published, by="the reaper")
        return
    last_seen = run.heartbeat_at
    dropped = _drop_sliced_staging(run, target) + _drop_staging_of_free_table(run.table_name, target)
    run.append_log(
        "error",
        message,
        last_seen=(getattr(run, "last_seen", None) or last_seen or run.queued_at).isoformat(),
        executor=run.executor,
        staging_dropped=dropped,
        save=False,
    )
    run.close(RunStatus.FAILED, message=message, error_kind=ErrorKind.TRANSIENT)
    run.heartbeat_at = last_seen
    run.save(update_fields=("log", *FINISH_FIELDS))


def _delete_dead_task(run: SyncRun) -> None:
    """Delete the dead run's task from the ORM broker's queue.

    A worker that takes a task locks it for the cluster's `retry` seconds (the sync timeout plus 5 minutes)
    and deletes it once the task returns; a killed worker deletes nothing, so the task stayed locked until the
    broker handed it out again, over an hour later, to find its run settled. The Redis broker hands a task out
    once and keeps nothing. Only tasks some worker took (locked into the future) are read.
    """
    if not run.task_id:
        return
    for task in OrmQ.objects.filter(lock__gt=timezone.now()):
        if task.task_id() == run.task_id:
            task.delete()
            run.append_log("info", "its task was taken off the queue", task=run.task_id, save=False)


def _drop_staging_of_free_table(table_name: str, target: str) -> list[str]:
    """Drop the staging tables a dead run of `table_name` left, if no run holds the table now; their names."""
    from syncengine.pipeline.leases import read_leases
    from syncengine.pipeline.load import drop_leftover_staging
    from syncengine.pipeline.locks import try_lock_table, unlock_table

    try:
        with psycopg.connect(target, connect_timeout=10, autocommit=True) as conn:
            if not try_lock_table(conn, table_name):
                return []  # a new run holds the table; it drops what is left itself
            try:
                if conn.execute("SELECT to_regnamespace('_fdm_staging') IS NULL").fetchone() == (True,):
                    return []
                if any(lease.table_name == table_name for lease in read_leases(conn)):
                    return []  # a sliced run holds the table: its staging is in use (or released with it)
                return drop_leftover_staging(conn, table_name)
            finally:
                unlock_table(conn, table_name)
    except psycopg.Error as exc:
        logger.warning("reaper: cannot drop staging tables of %s (%s)", table_name, type(exc).__name__)
        return []


def _running_silent_since(cutoff: datetime) -> QuerySet[Any]:  # runs annotated with last_seen
    """Running runs with no sign of life (heartbeat, else start) since `cutoff`, locked for the reaper; rows
    another reaper holds are skipped. Each carries its `last_seen`."""
    return (
        SyncRun.objects.select_for_update(skip_locked=True)
        .annotate(last_seen=Coalesce("heartbeat_at", "started_at", "queued_at"))
        .filter(status=RunStatus.RUNNING, last_seen__lt=cutoff)
    )


def _held_lock_keys() -> set[int] | None:
    """The advisory lock keys held in the target database now; None (logged) when it cannot be read."""
    from syncengine.pipeline.locks import held_table_lock_keys

    try:
        with psycopg.connect(connections.target_dsn(), connect_timeout=10, autocommit=True) as target:
            return held_table_lock_keys(target)
    except psycopg.Error as exc:
        logger.warning("reaper: cannot read locks in the target database (%s)", type(exc).__name__)
        return None


def _fail_orphaned_runs(*, now: datetime, exclude: set[int]) -> list[SyncRun]:
    """Rule 2 of `runs_fail_stale`, inside its transaction."""
    from syncengine.pipeline.locks import table_lock_key

    cutoff = now - timedelta(seconds=settings.FDM_RUN_ORPHAN_GRACE_SECONDS)
    silent = list(_running_silent_since(cutoff).exclude(pk__in=exclude))
    if not silent:
        return []
    held = _held_lock_keys()
    if held is None:
        return []
    orphaned: list[SyncRun] = []
    for run in silent:
        if table_lock_key(run.table_name) in held:
            continue  # still at work: a long publish or a slow source query sends no heartbeat
        if run.slicing is not None and run.stage != "publish":
            continue  # a sliced run holds the table by its lease; its dead slices are queued again instead
        message = (
            f"{run.table_name}: the run's process ({run.executor or 'unknown'}) is gone: its session ended at or "
            f"after {run.last_seen:%Y-%m-%d %H:%M:%S %Z} without recording an outcome (the table's lock in the "
            "target database is free); it is presumed dead and nothing was published by this run"
        )
        _settle_dead_run(run, message)
        orphaned.append(run)
    return orphaned


def _drop_sliced_staging(run: SyncRun, target: str) -> list[str]:
    """A dead sliced run: drop its staging tables and release the table's lease."""
    if run.slicing is None:
        return []
    from syncengine.pipeline.sliced import abandon_sliced_run

    try:
        dropped = abandon_sliced_run(target, run.table_name, str(run.pk))
    except Exception as exc:  # the lease is released at a later pass (`leases_release_closed`)
        logger.warning("reaper: cannot drop the sliced staging of run #%s (%s)", run.pk, type(exc).__name__)
        return []
    return [dropped] if dropped else []


def slices_retry_dead(*, now: datetime) -> list[RunSlice]:
    """Queue again the slices of running sliced runs whose worker is gone; returns them.

    A running slice holds its own advisory lock in the target database while it stages
    (`pipeline.sliced.slice_lock_key`): silent for FDM_RUN_ORPHAN_GRACE_SECONDS with that lock free, its
    process is gone. A queued slice that long unclaimed may have been taken by a cluster that died before
    starting it, so its task is sent again (a slice is claimed by a conditional update: a second task for
    it does nothing). A slice out of attempts fails its run. Done slices are never touched.
    """
    from syncengine import sliced_runs
    from syncengine.pipeline.errors import TransientError
    from syncengine.pipeline.sliced import slice_lock_key

    cutoff = now - timedelta(seconds=settings.FDM_RUN_ORPHAN_GRACE_SECONDS)
    pieces = RunSlice.objects.select_related("run").filter(run__status=RunStatus.RUNNING)
    silent = list(pieces.filter(status=SliceStatus.RUNNING, heartbeat_at__lt=cutoff))
    waiting = list(pieces.filter(status=SliceStatus.QUEUED, queued_at__lt=cutoff))
    if not silent and not waiting:
        return []
    held = _held_lock_keys()
    if held is None:
        return []
    retried: list[RunSlice] = []
    for piece in silent:
        if slice_lock_key(piece.run.table_name, str(piece.run_id), piece.number) in held:
            continue
        message = f"slice {piece.number}: its worker ({piece.executor}) is gone"
        last = piece.attempt >= settings.FDM_SYNC_MAX_ATTEMPTS
        status = SliceStatus.FAILED if last else SliceStatus.QUEUED
        if not RunSlice.objects.filter(pk=piece.pk, status=SliceStatus.RUNNING, attempt=piece.attempt).update(
            status=status, error_message=message, queued_at=now
        ):
            continue
        if last:
            sliced_runs.sliced_run_close(piece.run_id, TransientError(message, table=piece.run.table_name))
            continue
        sliced_runs.run_log(piece.run_id, "warning", f"{message}; queued again", attempt=piece.attempt)
        retried.append(piece)
    for piece in [*retried, *waiting]:
        RunSlice.objects.filter(pk=piece.pk, status=SliceStatus.QUEUED).update(queued_at=now)
        sliced_runs.slice_enqueue(piece)
    return retried


def leases_release_closed() -> list[str]:
    """Release the leases of sliced runs that are closed (or gone) and drop their staging tables: a run that
    closed while its target database was unreachable leaves its lease behind; the table stays busy until
    then. Returns the tables released."""
    from syncengine.pipeline.leases import read_leases
    from syncengine.pipeline.sliced import abandon_sliced_run

    target = connections.target_dsn()
    try:
        with psycopg.connect(target, connect_timeout=10, autocommit=True) as conn:
            held = read_leases(conn)
    except psycopg.Error as exc:
        logger.warning("reaper: cannot read table leases (%s)", type(exc).__name__)
        return []
    released: list[str] = []
    for lease in held:
        run = SyncRun.objects.filter(pk=int(lease.run_id)).first() if lease.run_id.isdigit() else None
        if run is not None and not run.is_terminal:
            continue
        try:
            if abandon_sliced_run(target, lease.table_name, lease.run_id) is not None:
                released.append(lease.table_name)
        except Exception as exc:
            logger.warning(
                "reaper: cannot release the lease of %s (%s)", lease.table_name, type(exc).__name__
            )
    return released
