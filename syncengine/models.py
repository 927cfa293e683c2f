"""Run history: one record per execution of a table sync."""

from __future__ import annotations

import logging
import traceback as traceback_module
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.urls import reverse
from django.utils import timezone

from syncengine.choices import (
    ErrorKind,
    LogLevel,
    ReconciliationStatus,
    RunCheckStatus,
    RunStatus,
    RunTrigger,
    SliceStatus,
)
from syncengine.redaction import redact, redact_value

# How many log entries a run keeps; the first ones (configuration, start) and the latest ones (how it ended)
# matter most, so the middle is dropped and counted.
LOG_HEAD_ENTRIES = 50


# What closing a run writes: its outcome and what the pipeline measured. Not the fields other processes write
# meanwhile (`task_id`, set by the process that enqueued the run once the queue accepted it, possibly after a
# fast worker claimed it; `cancel_requested`, set by an operator), nor those saved as they change (`log`,
# `config_hash`, the claim's `started_at` and `executor`).
FINISH_FIELDS = (
    "status",
    "finished_at",
    "heartbeat_at",
    "stage",
    "progress_rows",
    "mode",
    "rows_extracted",
    "rows_loaded",
    "rows_inserted",
    "rows_updated",
    "rows_deleted",
    "bytes_extracted",
    "bytes_loaded",
    "bytes_before_compression",
    "bytes_after_compression",
    "extract_seconds",
    "transform_seconds",
    "load_seconds",
    "publish_seconds",
    "watermark_before",
    "watermark_after",
    "drift",
    "checks",
    "reconciliation_status",
    "evidence",
    "error_message",
    "error_traceback",
    "error_kind",
    "skip_reason",
)


class SyncRun(models.Model):
    """One execution of one table's sync, from the request to its outcome.

    A run is created `queued` by a request (schedule, admin, API, command), claimed by exactly one worker
    (`start()`, a conditional update), and closed by `finish()` with one of the terminal states. It records
    what the pipeline measured (rows, bytes, per-stage seconds, watermark, drift, checks), and on failure
    the message, traceback and whether the failure was transient. Runs are history: the admin shows them
    read-only, and they outlive the table configuration they ran for.

    The table is referenced with `on_delete=SET_NULL` and its name is copied into `table_name`: deleting a
    table's configuration must not erase (PROTECT would forbid the delete, CASCADE would erase) the audit
    trail of what was synced when. Nothing here ever holds a secret: the pipeline never passes one, and
    every message is redacted again on the way in.
    """

    table = models.ForeignKey(
        "syncconfig.TableConfig",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="runs",
        help_text="The table configuration; empty once that configuration has been deleted.",
    )
    table_name = models.CharField(max_length=200, help_text="The table's name when the run was requested.")
    trigger = models.CharField(max_length=16, choices=RunTrigger.choices)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    full_refresh = models.BooleanField(default=False, help_text="Reload everything, ignoring the watermark.")
    backfill_from = models.CharField(
        max_length=100,
        blank=True,
        help_text="A backfill re-extracts incremental-column values from this one.",
    )
    backfill_to = models.CharField(
        max_length=100, blank=True, help_text="... up to this one (inclusive; empty: the newest row)."
    )
    allow_deletes = models.BooleanField(
        default=False, help_text="This run may delete more rows than the table's delete guard allows."
    )
    attempt = models.PositiveSmallIntegerField(default=1)
    retry_of = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="retries",
        help_text="The failed run this attempt repeats.",
    )
    mode = models.CharField(
        max_length=16, blank=True, help_text="The mode actually used: full or incremental."
    )
    config_hash = models.CharField(
        max_length=64, blank=True, help_text="SHA-256 of the table specification the run used."
    )
    task_id = models.CharField(max_length=64, blank=True, help_text="The task queue's id for this run.")
    executor = models.CharField(max_length=200, blank=True, help_text="host:pid of the process that ran it.")

    queued_at = models.DateTimeField(default=timezone.now)
    not_before = models.DateTimeField(null=True, blank=True, help_text="A retry waits until this time.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life from the worker.")

    stage = models.CharField(max_length=16, blank=True, help_text="The stage a running run is in.")
    progress_rows = models.BigIntegerField(default=0, help_text="Rows processed so far in the current stage.")

    rows_extracted = models.BigIntegerField(default=0)
    rows_loaded = models.BigIntegerField(default=0, help_text="Rows written to the staging table.")
    rows_inserted = models.BigIntegerField(default=0)
    rows_updated = models.BigIntegerField(default=0)
    rows_deleted = models.BigIntegerField(default=0)
    bytes_extracted = models.BigIntegerField(default=0)
    bytes_loaded = models.BigIntegerField(default=0)
    bytes_before_compression = models.BigIntegerField(
        default=0, help_text="Plaintext bytes of the values of compressed columns."
    )
    bytes_after_compression = models.BigIntegerField(
        default=0, help_text="The same values as zstd frames (before encryption)."
    )

    extract_seconds = models.FloatField(null=True, blank=True)
    transform_seconds = models.FloatField(null=True, blank=True)
    load_seconds = models.FloatField(null=True, blank=True)
    publish_seconds = models.FloatField(null=True, blank=True)

    watermark_before = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    watermark_after = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    drift = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    checks = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    reconciliation_status = models.CharField(
        max_length=16,
        choices=RunCheckStatus.choices,
        blank=True,
        help_text="The light check after publishing (counts and sums on both sides); details in checks.",
    )
    evidence = models.JSONField(
        default=dict,
        blank=True,
        encoder=DjangoJSONEncoder,
        help_text="What the run's evidence pack is built from: the configuration it ran with, the Snowflake "
        "queries, both tables' columns and the key ids it encrypted with (syncengine.evidence).",
    )

    error_message = models.TextField(blank=True)
    error_traceback = models.TextField(blank=True)
    error_kind = models.CharField(max_length=16, choices=ErrorKind.choices, blank=True)
    skip_reason = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)

    log = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    slicing = models.JSONField(
        null=True,
        blank=True,
        encoder=DjangoJSONEncoder,
        help_text="A sliced run (`parallel.slices`): its staging table and loaded columns; empty otherwise.",
    )

    class Meta:
        ordering = ["-queued_at", "-id"]
        indexes = [
            models.Index(fields=["table", "-queued_at"], name="syncrun_table_queued_idx"),
            models.Index(fields=["status"], name="syncrun_status_idx"),
        ]
        permissions = [
            ("start_sync", "Can start a sync run"),
            ("cancel_syncrun", "Can cancel a sync run"),
        ]
        verbose_name = "sync run"

    def __str__(self) -> str:
        return f"{self.table_name} #{self.pk} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("admin:syncengine_syncrun_change", args=[self.pk])

    @property
    def is_terminal(self) -> bool:
        return self.status in RunStatus.terminal()

    @property
    def duration(self) -> timedelta | None:
        if self.started_at is None:
            return None
        return (self.finished_at or timezone.now()) - self.started_at

    @property
    def rows_written(self) -> int:
        return self.rows_inserted + self.rows_updated + self.rows_deleted

    def start(self, *, executor: str = "") -> bool:
        """Claim the run for this process; False when it is no longer queued (cancelled, or claimed elsewhere).

        A conditional update, so two workers handed the same task (a redelivery after a lost acknowledgement)
        never both run it.
        """
        now = timezone.now()
        claimed = SyncRun.objects.filter(pk=self.pk, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, started_at=now, heartbeat_at=now, executor=executor
        )
        self.refresh_from_db()
        return claimed == 1

    def finish(
        self,
        status: str,
        error: BaseException | str | None = None,
        *,
        message: str = "",
        error_kind: str = "",
        skip_reason: str = "",
    ) -> None:
        """Close the run with a terminal `status`, recording `error` (an exception or a message) if given, and
        save its outcome (FINISH_FIELDS: status, times, what the recorder mapped onto it, the error).

        For an exception, `message` (when given) replaces its text, and the traceback is kept; `error_kind`
        defaults to what the exception's `terminal` attribute says.
        """
        self.close(status, error, message=message, error_kind=error_kind, skip_reason=skip_reason)
        self.save(update_fields=FINISH_FIELDS)

    def close(
        self,
        status: str,
        error: BaseException | str | None = None,
        *,
        message: str = "",
        error_kind: str = "",
        skip_reason: str = "",
    ) -> None:
        """`finish()` without saving: the caller saves FINISH_FIELDS (the recorder, with retries; the reaper,
        keeping a dead run's last heartbeat)."""
        if status not in RunStatus.terminal():
            raise ValueError(f"{status!r} is not a terminal run status")
        now = timezone.now()
        self.status = status
        self.finished_at = now
        if self.started_at is not None:
            self.heartbeat_at = now
        self.stage = ""
        if skip_reason:
            self.skip_reason = redact(skip_reason)
        if isinstance(error, BaseException):
            self.error_message = redact(message or str(error) or type(error).__name__)
            self.error_traceback = redact(
                "".join(traceback_module.format_exception(type(error), error, error.__traceback__))
            )
            if not error_kind:
                error_kind = ErrorKind.TERMINAL if getattr(error, "terminal", True) else ErrorKind.TRANSIENT
        elif error or message:
            self.error_message = redact(message or str(error))
        if error_kind:
            self.error_kind = error_kind

    def append_log(self, level: str, message: str, *, save: bool = True, **fields: Any) -> None:
        """Add a structured entry ({ts, level, message, fields}) to the run's log and save it (unless
        `save=False`: the entry stays in memory and goes with the next save of `log`).

        The log is capped at `FDM_RUN_LOG_LIMIT` entries: the first `LOG_HEAD_ENTRIES` are kept, then a marker
        counting the dropped entries, then the most recent ones.
        """
        entry = {
            "ts": timezone.now().isoformat(),
            "level": normalize_level(level),
            "message": redact(str(message)),
            "fields": redact_value(fields),
        }
        self.log = _capped([*self.log, entry], limit=settings.FDM_RUN_LOG_LIMIT)
        update_fields = ["log"]
        if self.status == RunStatus.RUNNING:
            self.heartbeat_at = timezone.now()
            update_fields.append("heartbeat_at")
        if self.pk is not None and save:
            self.save(update_fields=update_fields)


class RunSlice(models.Model):
    """One key range of a sliced run (`parallel.slices`), staged by whichever worker takes it.

    A slice is claimed with a conditional update (queued -> running), stages into its own committed staging
    table, and is `done` with what it staged (`result`, read by the publish step). A transient failure or a
    dead worker (the reaper) puts it back in the queue with the next attempt; a done slice is never staged
    again. A slice that fails for good fails its run.
    """

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="slices")
    number = models.PositiveSmallIntegerField()
    lower = models.JSONField(
        null=True, blank=True, help_text="The key range's lower end (inclusive; empty: open)."
    )
    upper = models.JSONField(
        null=True, blank=True, help_text="The key range's upper end (exclusive; empty: open)."
    )
    staging = models.CharField(max_length=63, help_text="The slice's staging table in _fdm_staging.")
    status = models.CharField(max_length=16, choices=SliceStatus.choices, default=SliceStatus.QUEUED)
    attempt = models.PositiveSmallIntegerField(default=0, help_text="How many times a worker took it.")
    executor = models.CharField(max_length=200, blank=True, help_text="host:pid of the last worker.")
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    rows = models.BigIntegerField(default=0, help_text="Rows staged (so far, while running).")
    result = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    error_message = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="runslice_run_number_unique")]

    def __str__(self) -> str:
        return f"slice {self.number} of run #{self.run_id} ({self.status})"


def normalize_level(level: str | int) -> str:
    """A log level as one of `LogLevel`'s values, whether given as "INFO", "warn" or logging.WARNING."""
    if isinstance(level, int):
        level = logging.getLevelName(level)
    lowered = str(level).strip().lower()
    if lowered in {"warn"}:
        return LogLevel.WARNING.value
    if lowered in {"critical", "fatal", "exception"}:
        return LogLevel.ERROR.value
    return lowered if lowered in LogLevel.values else LogLevel.INFO.value


def _capped(entries: list[dict], *, limit: int) -> list[dict]:
    if len(entries) <= limit:
        return entries
    head_count = min(LOG_HEAD_ENTRIES, limit // 2)
    head = entries[:head_count]
    rest = entries[head_count:]
    dropped = 0
    if rest and "omitted_entries" in rest[0].get("fields", {}):
        dropped = rest[0]["fields"]["omitted_entries"]
        rest = rest[1:]
    keep = max(limit - head_count - 1, 1)
    dropped += len(rest) - keep
    marker = {
        "ts": rest[-keep]["ts"],
        "level": LogLevel.WARNING.value,
        "message": f"{dropped} log entries omitted",
        "fields": {"omitted_entries": dropped},
    }
    return [*head, marker, *rest[-keep:]]


class DecryptedRead(models.Model):
    """Audit record of one read of decrypted column values: who read which table's which columns, when,
    through what (API, command, admin), and how many rows came back.

    Filter values are never stored (a filter on an encrypted column is itself sensitive), only the names of
    the filtered columns. Records are append-only history, read-only in the admin. The permission
    `syncengine.read_decrypted` is what allows such a read.
    """

    at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    username = models.CharField(max_length=150, help_text="The user's name at the time of the read.")
    table_name = models.CharField(max_length=200)
    columns = models.JSONField(default=list, help_text="The encrypted columns returned decrypted.")
    filtered_columns = models.JSONField(
        default=list, blank=True, help_text="Columns filtered on (no values)."
    )
    row_count = models.PositiveIntegerField(default=0)
    via = models.CharField(max_length=16, help_text="api, command or admin")
    client = models.CharField(max_length=200, blank=True, help_text="Client address or command host.")

    class Meta:
        ordering = ["-at", "-id"]
        permissions = [("read_decrypted", "Can read decrypted values of encrypted columns")]
        verbose_name = "decrypted read"

    def __str__(self) -> str:
        return (
            f"{self.username} read {self.table_name} ({', '.join(self.columns)}) at {self.at:%Y-%m-%d %H:%M}"
        )


class Reconciliation(models.Model):
    """One comparison of a synced table with its Snowflake source, from the request to its result.

    Created `queued` by a request (schedule, admin, API, command), claimed by one worker (`start()`, a
    conditional update) and closed by `finish()`: equal, different (with the differing keys and columns, the
    first `DIFFERENCES_KEPT`, and their count), or failed (the check could not run). A deep reconciliation
    compares every row by segment hashes; the light one counts and sums. The differences name keys and
    columns, never values: an encrypted column's plaintext is never stored here.
    """

    table = models.ForeignKey(
        "syncconfig.TableConfig",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="reconciliations",
    )
    table_name = models.CharField(max_length=200, help_text="The table's name when it was requested.")
    trigger = models.CharField(max_length=16, choices=RunTrigger.choices)
    deep = models.BooleanField(
        default=False, help_text="Every row compared (segment hashes), not counts and sums."
    )
    status = models.CharField(
        max_length=16, choices=ReconciliationStatus.choices, default=ReconciliationStatus.QUEUED
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    segments_checked = models.PositiveIntegerField(default=0)
    rows_compared = models.BigIntegerField(default=0, help_text="Rows in the source that were compared.")
    rows_target = models.BigIntegerField(default=0, help_text="Rows in the target that were compared.")
    differences_found = models.BigIntegerField(default=0)
    differences = models.JSONField(
        default=list, blank=True, encoder=DjangoJSONEncoder, help_text="Keys and differing columns (capped)."
    )
    details = models.JSONField(
        default=dict, blank=True, encoder=DjangoJSONEncoder, help_text="Queries, bytes moved, sums, seconds."
    )
    error_message = models.TextField(blank=True)

    DIFFERENCES_KEPT = 1000

    class Meta:
        ordering = ["-queued_at", "-id"]
        indexes = [models.Index(fields=["table", "-queued_at"], name="reconciliation_table_idx")]

    def __str__(self) -> str:
        return f"{self.table_name} reconciliation #{self.pk} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in ReconciliationStatus.terminal()

    @property
    def duration(self) -> timedelta | None:
        if self.started_at is None:
            return None
        return (self.finished_at or timezone.now()) - self.started_at

    def start(self) -> bool:
        """Claim it for this process; False when it is no longer queued (claimed elsewhere)."""
        claimed = Reconciliation.objects.filter(pk=self.pk, status=ReconciliationStatus.QUEUED).update(
            status=ReconciliationStatus.RUNNING, started_at=timezone.now()
        )
        self.refresh_from_db()
        return claimed == 1

    def finish(self, status: str, *, error: str = "") -> None:
        if status not in ReconciliationStatus.terminal():
            raise ValueError(f"{status!r} is not a terminal reconciliation status")
        self.status = status
        self.finished_at = timezone.now()
        self.error_message = redact(error)
        self.save()
