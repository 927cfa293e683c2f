"""The run record's side of a run: what the pipeline reports while it runs (`RunCallbacks`: progress, heartbeat,
log, cancel requests), and what it returns or raises, mapped onto the record when the run closes.

Django's database may go away under a running sync (a restart of a PostgreSQL server it shares with the target,
a dropped connection). The run's data does not depend on it, so nothing here lets such a failure into the
pipeline: a progress, heartbeat or log write that fails is logged and retried on a fresh connection at the next
one, and the outcome is saved with a few reconnecting attempts (`save_outcome`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection as django_connection
from django.db import utils as db_utils
from django.utils import timezone

from syncengine.choices import ErrorKind, RunStatus
from syncengine.models import FINISH_FIELDS, SyncRun, normalize_level
from syncengine.pipeline.errors import PipelineError
from syncengine.pipeline.result import SyncResult
from syncengine.pipeline.spec import TableSpec

logger = logging.getLogger("syncengine.runs")

# SQLSTATE classes that retrying cannot fix: bad credentials (28), a missing database (3D).
_TERMINAL_SQLSTATE_CLASSES = ("28", "3D")

# How often a running run writes its progress and heartbeat, and looks for a cancel request: often enough
# for a live progress view and a prompt cancel, rarely enough not to load the database on fast batches.
PROGRESS_INTERVAL_SECONDS = 1.0
CANCEL_POLL_INTERVAL_SECONDS = 1.0
# A running run's heartbeat while the pipeline reports nothing (a slow source query, a publish waiting for a
# lock): written from a thread of its own, so the reaper can tell a slow run from a dead one.
HEARTBEAT_INTERVAL_SECONDS = 10.0
# Saving a run's outcome: attempts, and the wait before the second (doubled each time): about 15 s in all,
# enough for a PostgreSQL restart.
OUTCOME_SAVE_ATTEMPTS = 5
OUTCOME_SAVE_BACKOFF_SECONDS = 1.0

# Failures of Django's database connection (the server restarting, the connection dropped).
DATABASE_ERRORS = (db_utils.OperationalError, db_utils.InterfaceError)


class OutcomeNotRecorded(Exception):
    """Django's database stayed unreachable while a run's outcome was being saved; the run still says
    `running` until the reaper settles it."""


ProgressCallback = Callable[[str, int], None]


def config_hash(spec: TableSpec) -> str:
    """A stable SHA-256 of the table specification: equal specs hash equal across processes and releases."""
    canonical = json.dumps(dataclasses.asdict(spec), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def classify(exc: BaseException) -> ErrorKind:
    """Terminal (needs a person) or transient (worth another attempt).

    Pipeline errors (and anything else with a boolean `terminal`) say so themselves. Anything else that escapes is judged by type: a dropped connection
    or a timeout is transient, except a refused login or a missing database; everything else (a bug, a bad
    setting) is terminal, because repeating it would fail the same way.
    """
    declared = getattr(exc, "terminal", None)
    if isinstance(declared, bool):  # PipelineError and fdm's own errors say what they are
        return ErrorKind.TERMINAL if declared else ErrorKind.TRANSIENT
    if isinstance(exc, DATABASE_ERRORS):  # Django's database: its driver's error is the cause
        exc = (
            exc.__cause__ if isinstance(exc.__cause__, psycopg.Error) else psycopg.OperationalError(str(exc))
        )
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        sqlstate = getattr(exc, "sqlstate", None) or ""
        if sqlstate.startswith(_TERMINAL_SQLSTATE_CLASSES):
            return ErrorKind.TERMINAL
        return ErrorKind.TRANSIENT
    if isinstance(exc, ConnectionError | TimeoutError):
        return ErrorKind.TRANSIENT
    try:
        from snowflake.connector.errors import OperationalError as SnowflakeOperationalError
    except ImportError:  # pragma: no cover - the connector is a hard dependency
        return ErrorKind.TERMINAL
    if isinstance(exc, SnowflakeOperationalError):
        return ErrorKind.TRANSIENT
    return ErrorKind.TERMINAL


def describe(exc: BaseException, *, table_name: str) -> str:
    """One line naming the table (and column, where the pipeline knows it) and the cause."""
    if isinstance(exc, PipelineError):
        text = str(exc)
        # Pipeline errors raised without a table name still say which table the run was for.
        return text if exc.table else f"{table_name}: {text}"
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    cause = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return f"{table_name}: {cause}"


def record_success(run: SyncRun, result: SyncResult) -> None:
    """Store the result's counts, per-stage seconds, watermark, drift and checks, and close the run."""
    run.mode = result.mode
    run.rows_extracted = result.extract.rows
    run.rows_loaded = result.load.rows
    run.rows_inserted = result.rows_inserted
    run.rows_updated = result.rows_updated
    run.rows_deleted = result.rows_deleted
    run.bytes_extracted = result.extract.bytes
    run.bytes_loaded = result.load.bytes
    run.bytes_before_compression = result.bytes_before_compression
    run.bytes_after_compression = result.bytes_after_compression
    run.extract_seconds = result.extract.seconds
    run.transform_seconds = result.transform.seconds
    run.load_seconds = result.load.seconds
    run.publish_seconds = result.publish_seconds
    run.watermark_before = _json_safe(result.watermark_before)
    run.watermark_after = _json_safe(result.watermark_after)
    run.drift = _json_safe(list(result.drift))
    run.checks = _json_safe(dict(result.checks))
    run.reconciliation_status = str((result.checks.get("reconciliation") or {}).get("status", ""))
    run.evidence = _json_safe({**run.evidence, **result.evidence.to_json()})
    run.progress_rows = result.extract.rows
    if result.target_created:
        run.append_log("info", "target table created", target=run.table_name, save=False)
    run.close(RunStatus.SUCCEEDED)
    save_outcome(run)


def record_published(run: SyncRun, published: dict[str, Any], *, by: str) -> None:
    """Close a run as succeeded from what the target's state says it published (`watermark.read_run_state`):
    its process died, or lost its error, after the publishing transaction committed."""
    run.rows_extracted = int(published.get("extracted") or 0)
    run.rows_loaded = int(published.get("loaded") or 0)
    run.rows_inserted = int(published.get("inserted") or 0)
    run.rows_updated = int(published.get("updated") or 0)
    run.rows_deleted = int(published.get("deleted") or 0)
    run.watermark_before = _json_safe(published.get("watermark_before"))
    run.watermark_after = _json_safe(published.get("watermark_after"))
    run.mode = str(published.get("mode") or run.mode)
    run.append_log(
        "warning",
        f"recorded by {by}: the target's state shows this run's data committed at {published.get('at')}",
        save=False,
    )
    last_seen = run.heartbeat_at
    run.close(RunStatus.SUCCEEDED)
    if by == "the reaper":
        run.heartbeat_at = last_seen  # the run's own last sign of life, not the reaper's
    save_outcome(run)


def published_by_run(run: SyncRun, *, target_dsn: str) -> dict[str, Any] | None:
    """What the target's state says this run published, if its publishing transaction committed; None when it
    did not, or when the target cannot be read."""
    from syncengine.pipeline.watermark import read_run_state

    try:
        with psycopg.connect(target_dsn, connect_timeout=10, autocommit=True) as conn:
            return read_run_state(conn, run.table_name, run_id=str(run.pk))
    except psycopg.Error as exc:
        logger.warning("run #%s: cannot read the target's state (%s)", run.pk, _first_line(exc))
        return None


def record_failure(run: SyncRun, exc: BaseException) -> ErrorKind:
    """Close the run as failed with a message naming table, column and cause; returns the error's kind.

    What was extracted before the failure stays in `rows_extracted` (the callbacks keep it on the record).
    """
    kind = classify(exc)
    message = describe(exc, table_name=run.table_name)
    run.append_log("error", message, kind=kind.value, error=type(exc).__name__, save=False)
    # The error's class, for what reacts to one kind of failure (alerts: a tripped delete guard).
    run.checks = {**(run.checks or {}), "failure": type(exc).__name__}
    run.close(RunStatus.FAILED, exc, message=message, error_kind=kind)
    save_outcome(run)
    return kind


def record_skip(run: SyncRun, reason: str) -> None:
    """Close the run as skipped (another run holds the table, or the table is disabled)."""
    run.append_log("warning", f"skipped: {reason}", save=False)
    run.close(RunStatus.SKIPPED, skip_reason=reason)
    save_outcome(run)


def record_cancel(run: SyncRun, reason: str) -> None:
    """Close the run as cancelled; the pipeline left the target as it was."""
    run.append_log(
        "warning", reason if reason.startswith("cancelled") else f"cancelled: {reason}", save=False
    )
    run.close(RunStatus.CANCELLED, message=reason)
    save_outcome(run)


def save_outcome(run: SyncRun, fields: Iterable[str] = ("log", *FINISH_FIELDS)) -> None:
    """Save a closed run, reconnecting to Django's database between attempts (OutcomeNotRecorded when it
    stays unreachable)."""
    delay = OUTCOME_SAVE_BACKOFF_SECONDS
    for attempt in range(1, OUTCOME_SAVE_ATTEMPTS + 1):
        try:
            run.save(update_fields=list(fields))
            return
        except DATABASE_ERRORS as exc:
            drop_broken_connection()
            if attempt == OUTCOME_SAVE_ATTEMPTS:
                raise OutcomeNotRecorded(
                    f"run #{run.pk} of {run.table_name} ended {run.status}, but Django's database stayed "
                    f"unreachable for {OUTCOME_SAVE_ATTEMPTS} attempts to record it "
                    f"({_first_line(exc)}); the reaper settles the run"
                ) from exc
            logger.warning(
                "run #%s: cannot record the outcome (%s); retrying in %.1fs", run.pk, _first_line(exc), delay
            )
            time.sleep(delay)
            delay *= 2


def drop_broken_connection() -> None:
    """Close this thread's connection to Django's database, so that the next query opens a fresh one."""
    try:
        django_connection.close()
    except Exception:  # a broken connection may fail to close; it is being thrown away
        logger.debug("closing a broken database connection failed", exc_info=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class RunCallbacks:
    """The pipeline's view of its run record: progress, heartbeat, log and cancel requests.

    Writes are throttled, and only this process writes the run while it runs (others set
    `cancel_requested` alone), so the in-memory record stays authoritative. None of them raises into the
    pipeline, and none waits for another: a write that fails (Django's database gone) is logged, the broken
    connection closed, and the record written again by the next write; log entries wait in memory until a
    write carries them. `heartbeat()` starts a thread that keeps `heartbeat_at` fresh while the pipeline is
    silent.
    """

    def __init__(self, run: SyncRun, *, on_progress: ProgressCallback | None):
        self.run = run
        self.on_progress = on_progress
        self._last_progress_write = 0.0
        self._last_cancel_check = 0.0
        self._cancel_seen = False
        self._write_failing = False
        self._log_changes = 0  # log entries added in memory ...
        self._log_saved = 0  # ... and how many of them a write has saved
        self._log_lock = threading.Lock()  # guards the in-memory log; never held across a database call
        self._write_lock = threading.Lock()  # one write at a time; the pipeline's thread never waits for it

    def progress(self, stage: str, rows: int) -> None:
        if self.on_progress is not None:
            self.on_progress(stage, rows)
        if stage == "extract":
            self.run.rows_extracted = rows
        elif stage == "load":
            self.run.rows_loaded = rows
        now = time.monotonic()
        if (
            stage == self.run.stage
            and not self._write_failing
            and now - self._last_progress_write < PROGRESS_INTERVAL_SECONDS
        ):
            return
        self._last_progress_write = now
        self.run.stage = stage[:16]
        self.run.progress_rows = rows
        self._write("progress")

    def log(self, level: str | int, message: str, **fields: object) -> None:
        level_name = normalize_level(level)
        logger.log(
            logging.getLevelName(level_name.upper()), "%s #%s: %s", self.run.table_name, self.run.pk, message
        )
        self._append_log(level_name, message, **fields)
        self._write("log")

    def should_cancel(self) -> bool:
        if self._cancel_seen:
            return True
        now = time.monotonic()
        if now - self._last_cancel_check < CANCEL_POLL_INTERVAL_SECONDS:
            return False
        self._last_cancel_check = now
        try:
            self._cancel_seen = SyncRun.objects.filter(pk=self.run.pk, cancel_requested=True).exists()
        except DATABASE_ERRORS as exc:
            self._write_failed("cancel check", exc)
            return False
        if self._cancel_seen:
            self.run.cancel_requested = True
            self.log("warning", "cancel requested; stopping at the next batch boundary")
        return self._cancel_seen

    def heartbeat(self) -> Heartbeat:
        """A context manager: while inside, a thread writes the heartbeat every HEARTBEAT_INTERVAL_SECONDS."""
        return Heartbeat(self)

    def _append_log(self, level: str, message: str, **fields: object) -> None:
        with self._log_lock:
            self.run.append_log(level, message, save=False, **fields)
            self._log_changes += 1

    def _write(self, what: str, *, wait: bool = False) -> None:
        """Save the run's stage, progress and heartbeat, and the log when it has unsaved entries; never
        raises. Without `wait`, a write already under way (the heartbeat's) makes this one a no-op: the next
        write carries what it would have."""
        if not self._write_lock.acquire(blocking=wait):
            return
        try:
            with self._log_lock:
                self.run.heartbeat_at = timezone.now()
                fields = ["stage", "progress_rows", "heartbeat_at", "rows_extracted", "rows_loaded"]
                log_changes = self._log_changes
                if log_changes != self._log_saved:
                    fields.append("log")
                values = {name: getattr(self.run, name) for name in fields}
            try:
                SyncRun.objects.filter(pk=self.run.pk, status=RunStatus.RUNNING).update(**values)
            except DATABASE_ERRORS as exc:
                self._write_failed(what, exc)
                return
            self._log_saved = log_changes
            self._write_failing = False
        finally:
            self._write_lock.release()

    def _write_failed(self, what: str, exc: BaseException) -> None:
        if not self._write_failing:
            self._append_log(
                "warning",
                f"could not write the run's {what} to Django's database; retrying on a fresh connection",
                error=_first_line(exc),
            )
        self._write_failing = True
        logger.warning(
            "%s #%s: cannot write %s (%s); the run goes on", self.run.table_name, self.run.pk, what, exc
        )
        drop_broken_connection()


class Heartbeat:
    """Writes a running run's heartbeat from a thread of its own (with its own database connection), so a
    run that waits on its source or on a lock still shows it is alive."""

    def __init__(self, callbacks: RunCallbacks):
        self.callbacks = callbacks
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"fdm heartbeat {callbacks.run.pk}", daemon=True
        )

    def _beat(self) -> None:
        try:
            while not self._stop.wait(HEARTBEAT_INTERVAL_SECONDS):
                self.callbacks._write("heartbeat", wait=True)
        finally:
            drop_broken_connection()  # this thread's own connection

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        # A write stuck on an unreachable database must not hold up recording the outcome.
        self._thread.join(timeout=HEARTBEAT_INTERVAL_SECONDS)


def _json_safe(value: Any) -> Any:
    """Round-trip through the model's encoder so that what is saved equals what is read back."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))
