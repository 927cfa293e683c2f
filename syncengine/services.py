"""Writes for runs: enqueue, execute, retry, cancel, and fail the ones whose worker is gone.

"Run now" anywhere (admin, API, command line) calls `run_enqueue`, which records a queued run and hands its
id to the task queue; a worker calls `run_execute`. The `sync_table` command calls `run_execute` in its own
process instead, so that it can show progress and exit with the outcome.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from syncconfig.choices import EncryptionMode
from syncconfig.models import TableConfig
from syncengine import connections, recorder, specs
from syncengine.choices import ErrorKind, RunStatus, RunTrigger
from syncengine.models import SyncRun, normalize_level
from syncengine.pipeline.errors import ConfigurationError, RunCancelled, TableBusy, TransientError
from syncengine.schedules import table_schedule_delete
from syncengine.selectors import run_active_for_table

logger = logging.getLogger("syncengine.runs")

EXECUTE_TASK = "syncengine.tasks.execute_run"
DISPATCH_TASK = "syncengine.tasks.dispatch_run"
RETRY_SCHEDULE_PREFIX = "fdm-retry:"

# How often a running run writes its progress and heartbeat, and looks for a cancel request: often enough
# for a live progress view and a prompt cancel, rarely enough not to load the database on fast batches.
PROGRESS_INTERVAL_SECONDS = 1.0
CANCEL_POLL_INTERVAL_SECONDS = 1.0

ProgressCallback = Callable[[str, int], None]


def run_create(
    *,
    table: TableConfig,
    trigger: str,
    full_refresh: bool = False,
    requested_by: User | AnonymousUser | None = None,
) -> SyncRun:
    """Record a queued run for `table` without handing it to the task queue (the caller executes it)."""
    user = requested_by if isinstance(requested_by, User) else None  # an anonymous user is recorded as nobody
    run = SyncRun.objects.create(
        table=table, table_name=table.name, trigger=trigger, full_refresh=full_refresh, requested_by=user
    )
    run.append_log(
        "info",
        "queued",
        trigger=trigger,
        full_refresh=full_refresh,
        requested_by=user.get_username() if user is not None else None,
    )
    return run


def run_enqueue(
    *,
    table: TableConfig,
    trigger: str,
    full_refresh: bool = False,
    requested_by: User | AnonymousUser | None = None,
) -> SyncRun:
    """Record a queued run for `table` and hand its id to the task queue; returns the run at once."""
    run = run_create(table=table, trigger=trigger, full_refresh=full_refresh, requested_by=requested_by)
    _push_to_queue(run)
    return run


def run_dispatch(*, run_id: int) -> SyncRun | None:
    """Hand a queued run (a retry whose backoff has passed) to the task queue; None when it is gone."""
    run = SyncRun.objects.filter(pk=run_id).first()
    if run is None or run.status != RunStatus.QUEUED:
        return run
    _push_to_queue(run)
    return run


def run_enqueue_scheduled(*, table_id: int) -> SyncRun | None:
    """What a table's schedule does when it fires: record a run, queued unless there is a reason not to.

    1. A table deleted since the schedule fired: drop the schedule, record nothing (there is no table).
    2. A disabled table: record a skipped run (the schedule is repaired by the next configuration save).
    3. A run of the table still queued or running: record a skipped run naming it, so that a slow table
       does not pile up queued runs hour after hour.
    4. Otherwise enqueue a run with trigger=schedule.
    """
    table = TableConfig.objects.filter(pk=table_id).first()
    if table is None:
        table_schedule_delete(table_id=table_id)
        logger.warning("schedule fired for deleted table id %s; schedule removed", table_id)
        return None
    if not table.enabled:
        return _record_skipped(table=table, reason="the table is disabled")
    active = run_active_for_table(table_id=table.pk)
    if active is not None:
        return _record_skipped(
            table=table,
            reason=f"run #{active.pk} of this table is still {active.status} (since {_ts(active)})",
        )
    return run_enqueue(table=table, trigger=RunTrigger.SCHEDULE)


def run_execute(
    *,
    run_id: int,
    on_progress: ProgressCallback | None = None,
    retry_transient: bool = True,
) -> SyncRun:
    """Execute a queued run in this process and record its outcome; never raises for a failed sync.

    1. Claim the run with a conditional update (queued -> running); if another process got it first, or it
       was cancelled meanwhile, return it untouched.
    2. Resolve its table: a deleted configuration fails the run; a disabled table skips a scheduled run.
    3. Build the table spec (and its hash) and the connection settings; a bad configuration fails the run.
    4. Run the pipeline with callbacks that store progress and heartbeats, keep the structured log, and
       report an operator's cancel request.
    5. Record the outcome: succeeded; skipped when another run holds the table; cancelled; or failed, with
       a new attempt enqueued after a backoff when the failure is transient and attempts remain.
    """
    run = SyncRun.objects.get(pk=run_id)
    if not run.start(executor=f"{socket.gethostname()}:{os.getpid()}"):
        logger.info("run #%s is %s, not queued; nothing to do", run.pk, run.status)
        return run
    run.append_log("info", "started", attempt=run.attempt, executor=run.executor)

    table = run.table
    if table is None:
        recorder.record_failure(
            run,
            ConfigurationError(
                "the table's configuration was deleted before the run started", table=run.table_name
            ),
        )
        return run
    if not table.enabled and run.trigger == RunTrigger.SCHEDULE:
        recorder.record_skip(run, "the table is disabled")
        return run

    try:
        spec = specs.table_spec(table)
        run.config_hash = recorder.config_hash(spec)
        run.save(update_fields=["config_hash"])
        source = connections.snowflake_settings()
        target = connections.target_dsn()
        keyring = connections.keyring(required=table.encryption_mode != EncryptionMode.OFF)
    except Exception as exc:  # a bad configuration or setting: terminal, recorded with its traceback
        recorder.record_failure(run, exc)
        return run

    # Imported here: the pipeline pulls in pyarrow and the Snowflake connector, which web processes that
    # only enqueue runs never need.
    from syncengine.pipeline.runner import run_sync

    callbacks = _RunCallbacks(run, on_progress=on_progress)
    try:
        result = run_sync(
            spec,
            source=source,
            target_dsn=target,
            full_refresh=run.full_refresh,
            on_progress=callbacks.progress,
            log=callbacks.log,
            should_cancel=callbacks.should_cancel,
            keyring=keyring,
        )
    except TableBusy as exc:
        recorder.record_skip(run, f"another run holds the table ({exc.message})")
        return run
    except RunCancelled as exc:
        recorder.record_cancel(run, f"cancelled by an operator ({exc.message})")
        return run
    except KeyboardInterrupt:
        recorder.record_cancel(run, "interrupted")
        raise
    except Exception as exc:
        kind = recorder.record_failure(run, exc)
        if kind == ErrorKind.TRANSIENT and retry_transient:
            run_retry(run=run)
        return run
    recorder.record_success(run, result)
    logger.info(
        "run #%s of %s succeeded: %s rows extracted, %s inserted, %s updated, %s deleted",
        run.pk,
        run.table_name,
        run.rows_extracted,
        run.rows_inserted,
        run.rows_updated,
        run.rows_deleted,
    )
    return run


def run_retry(*, run: SyncRun) -> SyncRun | None:
    """Queue the next attempt of a run that failed transiently; None when no attempts are left.

    The backoff doubles with each attempt (FDM_RETRY_BACKOFF_SECONDS, then twice that, ...). A delayed
    attempt waits in a one-off schedule, since the task queue itself cannot delay a task.
    """
    max_attempts = settings.FDM_SYNC_MAX_ATTEMPTS
    if run.attempt >= max_attempts or run.table_id is None:
        if run.attempt >= max_attempts:
            run.append_log("warning", f"no retry: attempt {run.attempt} of {max_attempts} failed")
        return None
    delay = settings.FDM_RETRY_BACKOFF_SECONDS * 2 ** (run.attempt - 1)
    not_before = timezone.now() + timedelta(seconds=delay) if delay > 0 else None
    with transaction.atomic():
        retry = SyncRun.objects.create(
            table_id=run.table_id,
            table_name=run.table_name,
            trigger=run.trigger,
            full_refresh=run.full_refresh,
            requested_by=run.requested_by,
            attempt=run.attempt + 1,
            retry_of=run,
            not_before=not_before,
        )
        retry.append_log(
            "info",
            f"attempt {retry.attempt} of {max_attempts} after a transient failure of run #{run.pk}",
            delay_seconds=delay,
        )
        if not_before is None:
            _push_to_queue(retry)
        else:
            Schedule.objects.create(
                name=f"{RETRY_SCHEDULE_PREFIX}{retry.pk}",
                func=DISPATCH_TASK,
                args=str(retry.pk),
                schedule_type=Schedule.ONCE,
                repeats=-1,  # a ONCE schedule with negative repeats deletes itself after firing
                next_run=not_before,
            )
    run.append_log("info", f"retry queued as run #{retry.pk}", delay_seconds=delay)
    return retry


def run_cancel(*, run: SyncRun) -> SyncRun:
    """Cancel a run: a queued one at once, a running one at its next batch boundary (the target is untouched).

    Conditional updates decide the race with a worker that is claiming or finishing the run.
    """
    now = timezone.now()
    cancelled_while_queued = SyncRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
        status=RunStatus.CANCELLED,
        cancel_requested=True,
        finished_at=now,
        error_message="cancelled before it started",
    )
    if cancelled_while_queued:
        Schedule.objects.filter(name=f"{RETRY_SCHEDULE_PREFIX}{run.pk}").delete()
        run.refresh_from_db()
        run.append_log("warning", "cancelled before it started")
        return run
    # A running run's log belongs to its worker, which logs the request when it sees the flag.
    SyncRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(cancel_requested=True)
    run.refresh_from_db()
    return run


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


class _RunCallbacks:
    """The pipeline's view of its run record: progress, heartbeat, log and cancel requests.

    Writes are throttled, and only this process writes the run while it runs (others set
    `cancel_requested` alone), so the in-memory record stays authoritative.
    """

    def __init__(self, run: SyncRun, *, on_progress: ProgressCallback | None):
        self.run = run
        self.on_progress = on_progress
        self._last_progress_write = 0.0
        self._last_cancel_check = 0.0
        self._cancel_seen = False

    def progress(self, stage: str, rows: int) -> None:
        if self.on_progress is not None:
            self.on_progress(stage, rows)
        now = time.monotonic()
        if stage == self.run.stage and now - self._last_progress_write < PROGRESS_INTERVAL_SECONDS:
            return
        self._last_progress_write = now
        self.run.stage = stage[:16]
        self.run.progress_rows = rows
        self.run.heartbeat_at = timezone.now()
        SyncRun.objects.filter(pk=self.run.pk).update(
            stage=self.run.stage, progress_rows=rows, heartbeat_at=self.run.heartbeat_at
        )

    def log(self, level: str | int, message: str, **fields: object) -> None:
        level_name = normalize_level(level)
        logger.log(
            logging.getLevelName(level_name.upper()), "%s #%s: %s", self.run.table_name, self.run.pk, message
        )
        self.run.append_log(level_name, message, **fields)

    def should_cancel(self) -> bool:
        if self._cancel_seen:
            return True
        now = time.monotonic()
        if now - self._last_cancel_check < CANCEL_POLL_INTERVAL_SECONDS:
            return False
        self._last_cancel_check = now
        self._cancel_seen = SyncRun.objects.filter(pk=self.run.pk, cancel_requested=True).exists()
        if self._cancel_seen:
            self.run.cancel_requested = True
            self.run.append_log("warning", "cancel requested; stopping at the next batch boundary")
        return self._cancel_seen


def _push_to_queue(run: SyncRun) -> None:
    """Send the run's id to the task queue once the surrounding transaction commits.

    After commit, so that a worker never looks for a run it cannot see yet (the Redis broker is outside
    the database transaction). A broker that refuses the task fails the run at once rather than leaving
    it queued for the reaper.
    """

    def push() -> None:
        try:
            task_id = async_task(
                EXECUTE_TASK,
                run.pk,
                task_name=f"fdm-run-{run.pk}",
                group=f"fdm-sync:{run.table_name}"[:100],
            )
        except Exception as exc:
            logger.exception("could not enqueue run #%s", run.pk)
            run.refresh_from_db()
            # Transient in kind (the broker may be back soon), but not retried: the retry could not be queued either.
            recorder.record_failure(
                run, TransientError(f"could not enqueue the run: {exc}", table=run.table_name)
            )
            return
        run.task_id = task_id or ""
        SyncRun.objects.filter(pk=run.pk).update(task_id=run.task_id)

    transaction.on_commit(push)


def _record_skipped(*, table: TableConfig, reason: str) -> SyncRun:
    run = SyncRun.objects.create(table=table, table_name=table.name, trigger=RunTrigger.SCHEDULE)
    recorder.record_skip(run, reason)
    return run


def _ts(run: SyncRun) -> str:
    moment = run.started_at or run.queued_at
    return f"{moment:%Y-%m-%d %H:%M:%S %Z}"


def runs_purge(*, older_than: datetime, dry_run: bool = False) -> int:
    """Delete finished runs queued before `older_than`; returns how many were (or, with dry_run, would be).

    Queued and running runs are never deleted, whatever their age (the reaper settles them). Retries of a
    purged run keep their own record (`retry_of` becomes empty). The finished-run counters in /metrics drop
    accordingly at their next full recount, which Prometheus treats as a counter reset.
    """
    runs = SyncRun.objects.filter(status__in=RunStatus.terminal(), queued_at__lt=older_than)
    if dry_run:
        return runs.count()
    deleted, by_model = runs.delete()
    return by_model.get(SyncRun._meta.label, 0)
