"""Writes for runs: enqueue, execute, retry, cancel and purge (the reaper, `syncengine.reaper`, fails the ones
whose worker is gone).

"Run now" anywhere (admin, API, command line) calls `run_enqueue`, which records a queued run and hands its
id to the task queue; a worker calls `run_execute`. The `sync_table` command calls `run_execute` in its own
process instead, so that it can show progress and exit with the outcome.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.utils import timezone
from django_q.exceptions import TimeoutException as TaskTimeout
from django_q.models import Schedule
from django_q.tasks import async_task

from syncconfig.choices import EncryptionMode
from syncconfig.models import TableConfig
from syncengine import connections, recorder, specs
from syncengine.choices import ErrorKind, RunStatus, RunTrigger
from syncengine.models import SyncRun
from syncengine.pipeline.errors import ConfigurationError, RunCancelled, TableBusy, TransientError
from syncengine.run_options import RunOptions, run_options_validate
from syncengine.schedules import table_schedule_delete
from syncengine.selectors import run_active_for_table

if TYPE_CHECKING:
    from syncengine.pipeline.protection.keyring import Keyring
    from syncengine.pipeline.result import SyncResult
    from syncengine.pipeline.source import SnowflakeSettings
    from syncengine.pipeline.spec import TableSpec

logger = logging.getLogger("syncengine.runs")

EXECUTE_TASK = "syncengine.tasks.execute_run"
DISPATCH_TASK = "syncengine.tasks.dispatch_run"
RETRY_SCHEDULE_PREFIX = "fdm-retry:"


def run_create(
    *,
    table: TableConfig,
    trigger: str,
    full_refresh: bool = False,
    options: RunOptions | None = None,
    requested_by: User | AnonymousUser | None = None,
) -> SyncRun:
    """Record a queued run for `table` without handing it to the task queue (the caller executes it).

    `options` (a backfill range, allowing deletes) are validated first: ValidationError naming the field.
    """
    options = options or RunOptions()
    run_options_validate(table=table, options=options, full_refresh=full_refresh)
    user = requested_by if isinstance(requested_by, User) else None  # an anonymous user is recorded as nobody
    run = SyncRun.objects.create(
        table=table,
        table_name=table.name,
        trigger=trigger,
        full_refresh=full_refresh,
        backfill_from=options.backfill_from,
        backfill_to=options.backfill_to,
        allow_deletes=options.allow_deletes,
        requested_by=user,
    )
    extras: dict[str, Any] = {}
    if options.backfill_from:
        extras["backfill"] = {"from": options.backfill_from, "to": options.backfill_to or None}
    if options.allow_deletes:
        extras["allow_deletes"] = True
    run.append_log(
        "info",
        "queued",
        trigger=trigger,
        full_refresh=full_refresh,
        requested_by=user.get_username() if user is not None else None,
        **extras,
    )
    return run


def run_enqueue(
    *,
    table: TableConfig,
    trigger: str,
    full_refresh: bool = False,
    options: RunOptions | None = None,
    requested_by: User | AnonymousUser | None = None,
) -> SyncRun:
    """Record a queued run for `table` and hand its id to the task queue; returns the run at once."""
    run = run_create(
        table=table, trigger=trigger, full_refresh=full_refresh, options=options, requested_by=requested_by
    )
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
       does not pile up queued runs hour after hour. A running one is first given to the reaper, so that a
       run whose process died is settled (and retried) now rather than at the reaper's next pass.
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
    if active is not None and active.status == RunStatus.RUNNING:
        from syncengine import reaper  # the reaper builds on these services

        reaper.runs_fail_stale()
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
    on_progress: recorder.ProgressCallback | None = None,
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

    resolved = _resolve_run(run)
    if resolved is None:
        return run
    spec, source, target, keyring = resolved

    callbacks = recorder.RunCallbacks(run, on_progress=on_progress)
    try:
        with callbacks.heartbeat():
            if _slices_across_workers(run, spec):
                from syncengine.sliced_runs import sliced_run_start  # builds on these services

                if sliced_run_start(run, spec, source=source, target=target, callbacks=callbacks):
                    return run  # running: its slices and its publish are tasks of their own
            result = _run_pipeline(
                run, spec, source=source, target=target, keyring=keyring, callbacks=callbacks
            )
    except TableBusy:
        recorder.record_skip(run, _busy_reason(run))
        return run
    except RunCancelled as exc:
        recorder.record_cancel(run, f"{exc.message} at an operator's request")
        return run
    except KeyboardInterrupt:
        recorder.record_cancel(run, "interrupted")
        raise
    except TaskTimeout as exc:
        # django-q2's task timeout (FDM_SYNC_TIMEOUT) raises this inside the run, then stops the worker: record
        # why the run ended (or that its data committed) before the process goes.
        stopped = TransientError(
            f"stopped by the worker's task timeout (FDM_SYNC_TIMEOUT) in stage {run.stage or 'starting'}: "
            f"{exc}",
            table=run.table_name,
        )
        _record_failed_run(run, stopped, target=target, retry_transient=retry_transient)
        raise
    except Exception as exc:
        _record_failed_run(run, exc, target=target, retry_transient=retry_transient)
        return run
    recorder.record_success(run, result)
    if result.mode == "full" and (result.rows_inserted or result.rows_deleted):
        from syncengine.maintenance import table_vacuum_after_load  # maintenance builds on these services

        table_vacuum_after_load(run=run)
    return run


def _resolve_run(run: SyncRun) -> tuple[TableSpec, SnowflakeSettings, str, Keyring | None] | None:
    """The run's table spec and connection settings; None when the run was recorded instead: its table was
    deleted (failed), disabled (a scheduled run is skipped) or its configuration or settings are bad (failed)."""
    table = run.table
    if table is None:
        recorder.record_failure(
            run,
            ConfigurationError(
                "the table's configuration was deleted before the run started", table=run.table_name
            ),
        )
        return None
    if not table.enabled and run.trigger == RunTrigger.SCHEDULE:
        recorder.record_skip(run, "the table is disabled")
        return None
    try:
        spec = specs.table_spec(table)
        run.config_hash = recorder.config_hash(spec)
        run.evidence = {"configuration": table.to_table_dict()}
        run.save(update_fields=["config_hash", "evidence"])
        source = connections.snowflake_settings()
        target = connections.target_dsn()
        keyring = connections.keyring(required=table.encryption_mode != EncryptionMode.OFF)
    except Exception as exc:  # a bad configuration or setting: terminal, recorded with its traceback
        recorder.record_failure(run, exc)
        return None
    return spec, source, target, keyring


def _slices_across_workers(run: SyncRun, spec: TableSpec) -> bool:
    """A table with `parallel.slices` is sliced across workers, except for a backfill (a merge) and for
    `sync_table`, which runs in the foreground of its own process."""
    return spec.slices >= 2 and not run.backfill_from and run.trigger != RunTrigger.COMMAND


def _run_pipeline(  # noqa: PLR0913 - the run's parts, handed on
    run: SyncRun,
    spec: TableSpec,
    *,
    source: SnowflakeSettings,
    target: str,
    keyring: Keyring | None,
    callbacks: recorder.RunCallbacks,
) -> SyncResult:
    # Imported here: the pipeline pulls in pyarrow and the Snowflake connector, which web processes that
    # only enqueue runs never need.
    from syncengine.pipeline.runner import run_sync
    from syncengine.pipeline.slices import SliceLimits
    from syncengine.pipeline.source_pool import SESSIONS

    return run_sync(
        spec,
        source=SESSIONS.source(source),  # a worker reuses its Snowflake sessions from run to run
        target_dsn=target,
        full_refresh=run.full_refresh,
        allow_deletes=run.allow_deletes,
        backfill=RunOptions(backfill_from=run.backfill_from, backfill_to=run.backfill_to).backfill,
        on_progress=callbacks.progress,
        log=callbacks.log,
        should_cancel=callbacks.should_cancel,
        keyring=keyring,
        run_id=str(run.pk),
        copy_streams=settings.FDM_PIPELINE["copy_streams"],
        slicing=SliceLimits(connections=settings.FDM_PIPELINE["source_connections"]),
        publish_lock_timeout=settings.FDM_PIPELINE["publish_lock_timeout_seconds"],
    )


def _record_failed_run(run: SyncRun, exc: Exception, *, target: str, retry_transient: bool) -> None:
    """A failure raised after the publishing transaction committed (the connection dropped as it committed) is
    no failure: the target's state says so, and the run is recorded as succeeded. Otherwise the run fails,
    and a transient failure is retried while attempts remain."""
    # Only a run that reached its publish can have committed (the in-memory stage is this process's own).
    published = recorder.published_by_run(run, target_dsn=target) if run.stage == "publish" else None
    if published is not None:
        recorder.record_published(run, published, by="its own process after an error")
        return
    kind = recorder.record_failure(run, exc)
    if kind == ErrorKind.TRANSIENT and retry_transient:
        run_retry(run=run)


def _busy_reason(run: SyncRun) -> str:
    """Why a run could not take its table: the run that holds it, when this database knows it."""
    holder = (
        SyncRun.objects.filter(table_name=run.table_name, status=RunStatus.RUNNING)
        .exclude(pk=run.pk)
        .order_by("started_at")
        .first()
    )
    if holder is None:
        return "another process holds the table's lock in the target database"
    started = timezone.localtime(holder.started_at) if holder.started_at else None
    return (
        f"another run (#{holder.pk}, started {started:%H:%M:%S}, stage {holder.stage or 'starting'}) "
        "holds the table"
    )


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
            backfill_from=run.backfill_from,
            backfill_to=run.backfill_to,
            allow_deletes=run.allow_deletes,
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
