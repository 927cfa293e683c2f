"""Sliced runs on the Django side: the run record and its slices, and the tasks that carry them across workers.

A table with `parallel: {slices: N}` whose run is a plain full load is run in pieces that any worker (on any
machine sharing the broker) takes (the core's side: `pipeline.sliced`):

1. `sliced_run_start` (in the worker that claimed the run): plan the slices, take the table's lease, record one
   `RunSlice` per key range and queue a `tasks.execute_slice` for each. The run stays `running`.
2. `slice_execute` (any worker): claim the slice (queued -> running), stage it, mark it done; the last slice
   done queues the publish, once (a conditional update of the run's stage).
3. `sliced_publish` (any worker): publish every slice in one transaction and record the run's outcome.

A slice that fails transiently is queued again (up to FDM_SYNC_MAX_ATTEMPTS attempts of that slice); one whose
worker died is queued again by the reaper (`reaper.slices_retry_dead`); a slice that fails for good, a failed
publish, or a cancel request drop the run's staging tables, release the lease and close the run.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_q.tasks import async_task

from syncconfig.choices import EncryptionMode
from syncengine import connections, recorder, specs
from syncengine.choices import ErrorKind, RunStatus, SliceStatus
from syncengine.models import RunSlice, SyncRun
from syncengine.pipeline.errors import ConfigurationError, RunCancelled, TableBusy

if TYPE_CHECKING:
    from syncengine.pipeline.hooks import Hooks
    from syncengine.pipeline.sliced import SlicedStart
    from syncengine.pipeline.source import SnowflakeSettings
    from syncengine.pipeline.spec import TableSpec

logger = logging.getLogger("syncengine.runs")

SLICE_TASK = "syncengine.tasks.execute_slice"
PUBLISH_TASK = "syncengine.tasks.publish_sliced_run"
SLICE_HEARTBEAT_SECONDS = 5.0


def _executor() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_log(run_id: int, level: str, message: str, **fields: Any) -> None:
    """Append to a run's log under its row lock: slices on other workers append to the same log."""
    with transaction.atomic():
        run = SyncRun.objects.select_for_update().get(pk=run_id)
        run.append_log(level, message, **fields)


def slice_enqueue(piece: RunSlice) -> None:
    """Hand a slice to the task queue once the surrounding transaction commits."""

    def push() -> None:
        async_task(SLICE_TASK, piece.pk, task_name=f"fdm-run-{piece.run_id}-slice-{piece.number}")

    transaction.on_commit(push)


def sliced_run_start(
    run: SyncRun, spec: TableSpec, *, source: SnowflakeSettings, target: str, callbacks: recorder.RunCallbacks
) -> bool:
    """Step 1: set the run's slices up and queue them; False when this run is not sliced (not a plain full
    load), and the caller runs it in one process. TableBusy and pipeline errors propagate."""
    from syncengine.pipeline.sliced import start_sliced_run

    start = start_sliced_run(
        spec,
        source=source,
        target_dsn=target,
        run_id=str(run.pk),
        full_refresh=run.full_refresh,
        log=callbacks.log,
    )
    if start is None:
        return False
    with transaction.atomic():
        SyncRun.objects.filter(pk=run.pk).update(
            slicing={"staging": start.staging, "columns": [list(pair) for pair in start.columns]},
            stage="slices",
            mode="full",
        )
        for task in start.slices:
            piece = RunSlice.objects.create(
                run=run, number=task.number, lower=task.lower, upper=task.upper, staging=task.staging
            )
            slice_enqueue(piece)
    run.refresh_from_db()
    run_log(run.pk, "info", f"split into {len(start.slices)} slices", staging=start.staging)
    return True


def _sliced_start(run: SyncRun) -> SlicedStart:
    from syncengine.pipeline.sliced import SlicedStart, SliceTask

    slicing = run.slicing or {}
    return SlicedStart(
        staging=slicing["staging"],
        slices=tuple(
            SliceTask(number=p.number, lower=p.lower, upper=p.upper, staging=p.staging)
            for p in run.slices.order_by("number")
        ),
        columns=tuple(tuple(pair) for pair in slicing["columns"]),
    )


def _claim(slice_id: int) -> RunSlice | None:
    """queued -> running, with the next attempt; None when another worker has it or it is finished."""
    now = timezone.now()
    claimed = RunSlice.objects.filter(
        pk=slice_id, status=SliceStatus.QUEUED, run__status=RunStatus.RUNNING
    ).update(
        status=SliceStatus.RUNNING,
        attempt=F("attempt") + 1,
        executor=_executor(),
        started_at=now,
        heartbeat_at=now,
        rows=0,
        error_message="",
    )
    return RunSlice.objects.select_related("run").get(pk=slice_id) if claimed else None


def _run_spec(run: SyncRun) -> TableSpec:
    """The table's spec, which must be the one the run started with."""
    if run.table is None:
        raise ConfigurationError("the table's configuration was deleted during the run", table=run.table_name)
    spec = specs.table_spec(run.table)
    if run.config_hash and recorder.config_hash(spec) != run.config_hash:
        raise ConfigurationError(
            "the table's configuration changed during the sliced run; the next run uses the new one",
            table=run.table_name,
        )
    return spec


class SliceHooks:
    """A slice's callbacks: rows staged and a heartbeat on the slice and its run, and the run's cancel flag."""

    def __init__(self, piece: RunSlice):
        self.piece = piece
        self.rows = 0
        self.cancelled = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="fdm slice heartbeat", daemon=True)

    def hooks(self) -> Hooks:
        from syncengine.pipeline.hooks import Hooks

        return Hooks.of(log=self._log, progress=self._progress, cancelled=lambda: self.cancelled)

    def _log(self, level: str | int, message: str, **fields: object) -> None:
        logger.info("run #%s slice %s: %s %s", self.piece.run_id, self.piece.number, message, fields)

    def _progress(self, stage: str, rows: int) -> None:
        if stage == "load":
            self.rows = rows

    def _beat(self) -> None:
        from django.db import connection

        try:
            while not self._stop.wait(SLICE_HEARTBEAT_SECONDS):
                now = timezone.now()
                RunSlice.objects.filter(pk=self.piece.pk).update(heartbeat_at=now, rows=self.rows)
                SyncRun.objects.filter(pk=self.piece.run_id, status=RunStatus.RUNNING).update(
                    heartbeat_at=now
                )
                run = (
                    SyncRun.objects.filter(pk=self.piece.run_id).values("status", "cancel_requested").first()
                )
                self.cancelled = run is None or run["status"] != RunStatus.RUNNING or run["cancel_requested"]
        except Exception:  # a heartbeat never fails the slice; the reaper judges by its absence
            logger.exception("slice heartbeat of run #%s failed", self.piece.run_id)
        finally:
            connection.close()

    def __enter__(self) -> SliceHooks:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def slice_execute(*, slice_id: int) -> RunSlice | None:
    """Step 2: stage one slice; the last one done queues the publish. Never raises for a failed slice."""
    piece = _claim(slice_id)
    if piece is None:
        return None
    run = piece.run
    if run.cancel_requested:
        _slice_failed(piece, RunCancelled("cancelled before the slice started", table=run.table_name))
        piece.refresh_from_db()
        return piece
    from syncengine.pipeline.sliced import stage_slice

    try:
        spec = _run_spec(run)
        keyring = connections.keyring(
            required=run.table is not None and run.table.encryption_mode != EncryptionMode.OFF
        )
        start = _sliced_start(run)
        task = next(task for task in start.slices if task.number == piece.number)
        with SliceHooks(piece) as callbacks:
            staged = stage_slice(
                spec,
                task,
                source=connections.snowflake_settings(),
                target_dsn=connections.target_dsn(),
                run_id=str(run.pk),
                columns=start.columns,
                keyring=keyring,
                hooks=callbacks.hooks(),
                copy_streams=settings.FDM_PIPELINE["copy_streams"],
            )
    except Exception as exc:
        _slice_failed(piece, exc)
        piece.refresh_from_db()
        return piece
    RunSlice.objects.filter(pk=piece.pk, status=SliceStatus.RUNNING, attempt=piece.attempt).update(
        status=SliceStatus.DONE, finished_at=timezone.now(), rows=staged.rows, result=staged.to_json()
    )
    run_log(run.pk, "info", f"slice {piece.number} staged", rows=staged.rows, executor=piece.executor)
    _publish_when_all_done(run.pk)
    piece.refresh_from_db()
    return piece


def _slice_failed(piece: RunSlice, exc: Exception) -> None:
    """Queue the slice again after a transient failure while attempts remain; otherwise fail the run."""
    kind = recorder.classify(exc)
    message = recorder.describe(exc, table_name=piece.run.table_name)
    cancelled = isinstance(exc, RunCancelled)
    retry = kind == ErrorKind.TRANSIENT and piece.attempt < settings.FDM_SYNC_MAX_ATTEMPTS and not cancelled
    status = SliceStatus.QUEUED if retry else SliceStatus.FAILED
    updated = RunSlice.objects.filter(pk=piece.pk, status=SliceStatus.RUNNING, attempt=piece.attempt).update(
        status=status, error_message=message, finished_at=timezone.now(), queued_at=timezone.now()
    )
    if not updated:
        return  # the reaper settled it meanwhile
    if cancelled:
        sliced_run_close(piece.run_id, exc, cancelled=True)
        return
    run_log(
        piece.run_id, "warning" if retry else "error", f"slice {piece.number} failed: {message}", kind=kind
    )
    if retry:
        piece.refresh_from_db()
        slice_enqueue(piece)
    else:
        sliced_run_close(piece.run_id, exc)


def _publish_when_all_done(run_id: int) -> None:
    """Queue the publish when every slice is done; the run's stage moves to publish once, under its row lock."""
    with transaction.atomic():
        run = SyncRun.objects.select_for_update().get(pk=run_id)
        if run.status != RunStatus.RUNNING or run.stage == "publish":
            return
        if run.slices.exclude(status=SliceStatus.DONE).exists():
            return
        run.stage = "publish"
        run.save(update_fields=["stage"])
        transaction.on_commit(lambda: async_task(PUBLISH_TASK, run_id, task_name=f"fdm-run-{run_id}-publish"))


def sliced_publish(*, run_id: int) -> SyncRun:
    """Step 3: publish every slice in one transaction and record the run's outcome."""
    from syncengine.pipeline.sliced import SliceStaged, publish_slices

    run = SyncRun.objects.get(pk=run_id)
    if run.status != RunStatus.RUNNING:
        return run
    if run.cancel_requested:
        return sliced_run_close(run.pk, RunCancelled("cancelled", table=run.table_name), cancelled=True)
    target = connections.target_dsn()
    try:
        spec = _run_spec(run)
        done = [SliceStaged.from_json(piece.result) for piece in run.slices.order_by("number")]
        run.append_log("info", "publishing", slices=len(done), executor=_executor())
        result = publish_slices(
            spec,
            _sliced_start(run),
            done,
            source=connections.snowflake_settings(),
            target_dsn=target,
            run_id=str(run.pk),
            keyring=connections.keyring(required=spec.encryption.mode != "off"),
            lock_timeout=settings.FDM_PIPELINE["publish_lock_timeout_seconds"],
            log=lambda level, message, **fields: None,
        )
    except Exception as exc:
        published = recorder.published_by_run(run, target_dsn=target)
        if published is not None:
            recorder.record_published(run, published, by="its publishing process after an error")
            return run
        if _publish_again(run, exc):
            return run
        return sliced_run_close(run.pk, exc)
    run.refresh_from_db()
    recorder.record_success(run, result)
    from syncengine.maintenance import table_vacuum_after_load

    table_vacuum_after_load(run=run)
    return run


def _publish_again(run: SyncRun, exc: Exception) -> bool:
    """A transient publish failure (readers holding the table past the lock timeout, a dropped connection)
    queues the publish again, keeping every staged slice, up to FDM_SYNC_MAX_ATTEMPTS publishes."""
    attempts = int((run.slicing or {}).get("publish_attempts", 1))
    if recorder.classify(exc) != ErrorKind.TRANSIENT or attempts >= settings.FDM_SYNC_MAX_ATTEMPTS:
        return False
    SyncRun.objects.filter(pk=run.pk).update(
        slicing={**(run.slicing or {}), "publish_attempts": attempts + 1}
    )
    message = recorder.describe(exc, table_name=run.table_name)
    run_log(run.pk, "warning", f"publish failed: {message}; publishing again", attempt=attempts + 1)
    async_task(PUBLISH_TASK, run.pk, task_name=f"fdm-run-{run.pk}-publish-{attempts + 1}")
    return True


def sliced_run_close(run_id: int, exc: BaseException, *, cancelled: bool = False) -> SyncRun:
    """A slice failed for good, the publish failed, or an operator cancelled: drop the run's staging tables,
    release the table's lease, close the run (once) and queue a new attempt after a transient failure."""
    from syncengine import services
    from syncengine.pipeline.sliced import abandon_sliced_run

    run = SyncRun.objects.get(pk=run_id)
    try:
        dropped = abandon_sliced_run(connections.target_dsn(), run.table_name, str(run.pk))
    except Exception as cleanup_error:  # the reaper releases the lease of a closed run later
        logger.warning("run #%s: could not drop its staging tables (%s)", run.pk, cleanup_error)
        dropped = None
    with transaction.atomic():
        run = SyncRun.objects.select_for_update().get(pk=run_id)
        if run.is_terminal:
            return run
        run.slices.filter(status__in=(SliceStatus.QUEUED, SliceStatus.RUNNING)).update(
            status=SliceStatus.FAILED
        )
        run.append_log("info", "dropped the run's staging tables", staging=dropped, save=False)
        if cancelled:
            recorder.record_cancel(run, "cancelled at an operator's request")
            return run
        kind = recorder.record_failure(run, exc)
    if kind == ErrorKind.TRANSIENT and not isinstance(exc, TableBusy):
        services.run_retry(run=run)
    return run
