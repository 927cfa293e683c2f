"""The run record's side of a run: what the pipeline reports while it runs (`RunCallbacks`: progress, heartbeat,
log, cancel requests), and what it returns or raises, mapped onto the record when the run closes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from syncengine.choices import ErrorKind, RunStatus
from syncengine.models import SyncRun, normalize_level
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
    if isinstance(exc, psycopg.OperationalError):
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
    run.progress_rows = result.extract.rows
    if result.target_created:
        run.append_log("info", "target table created", target=run.table_name)
    run.finish(RunStatus.SUCCEEDED)


def record_failure(run: SyncRun, exc: BaseException) -> ErrorKind:
    """Close the run as failed with a message naming table, column and cause; returns the error's kind."""
    kind = classify(exc)
    message = describe(exc, table_name=run.table_name)
    run.append_log("error", message, kind=kind.value, error=type(exc).__name__)
    run.finish(RunStatus.FAILED, exc, message=message, error_kind=kind)
    return kind


def record_skip(run: SyncRun, reason: str) -> None:
    """Close the run as skipped (another run holds the table, or the table is disabled)."""
    run.append_log("warning", f"skipped: {reason}")
    run.finish(RunStatus.SKIPPED, skip_reason=reason)


def record_cancel(run: SyncRun, reason: str) -> None:
    """Close the run as cancelled; the pipeline left the target as it was."""
    run.append_log("warning", reason if reason.startswith("cancelled") else f"cancelled: {reason}")
    run.finish(RunStatus.CANCELLED, message=reason)


class RunCallbacks:
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


def _json_safe(value: Any) -> Any:
    """Round-trip through the model's encoder so that what is saved equals what is read back."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))
