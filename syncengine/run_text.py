"""A run in words: the one line a worker prints when a run ends, and the summary the run's page opens with.

One home for how runs are described, so the worker's output, the admin and the dashboard say the same thing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from syncengine.choices import RunStatus
from syncengine.models import SyncRun


def first_line(text: str) -> str:
    """The first non-empty line of a message (errors carry details on the lines after it)."""
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


def seconds_text(seconds: float | None) -> str:
    """3.5 s, 2 min 5 s, 1 h 2 min: precise for short runs, readable for long ones."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def duration_text(seconds: float) -> str:
    """A long span in words, to the two largest units: 45 s, 12 min, 3 h 5 min, 2 d 4 h."""
    seconds = max(seconds, 0)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def outcome_line(run: SyncRun) -> str:
    """The line a worker prints when a run ends: table, run id, status, and what happened or went wrong.

    >>> # run #12 of transactions failed: Snowflake table PROD.PUBLIC.TXN does not exist
    """
    head = f"run #{run.pk} of {run.table_name} {run.status}"
    duration = run.duration
    took = f" in {seconds_text(duration.total_seconds())}" if duration is not None else ""
    if run.status == RunStatus.SUCCEEDED:
        return (
            f"{head}{took}: {run.rows_extracted} rows extracted, {run.rows_inserted} inserted, "
            f"{run.rows_updated} updated, {run.rows_deleted} deleted"
        )
    if run.status == RunStatus.SKIPPED:
        return f"{head}: {first_line(run.skip_reason) or 'no reason recorded'}"
    reason = first_line(run.error_message)
    if run.status == RunStatus.FAILED:
        kind = f" ({run.error_kind})" if run.error_kind else ""
        return f"{head}{took}{kind}: {reason or 'no error recorded'}"
    return f"{head}{took}: {reason}" if reason else f"{head}{took}"


def sentence(text: str) -> str:
    """A message's first line as a sentence: a capital first letter and a full stop."""
    line = first_line(text)
    if not line:
        return ""
    line = line[0].upper() + line[1:]
    return line if line[-1] in ".!?" else f"{line}."


def protection_counts(checks: Any) -> tuple[int, int]:
    """How many columns a run encrypted and compressed (without encryption), from its protection checks."""
    columns = checks.get("protection") if isinstance(checks, dict) else None
    if not isinstance(columns, dict):
        return 0, 0
    encrypted = sum(1 for stats in columns.values() if isinstance(stats, dict) and stats.get("encrypted"))
    return encrypted, len(columns) - encrypted


def _changes(run: SyncRun) -> str:
    unchanged = run.checks.get("rows_unchanged") if isinstance(run.checks, dict) else None
    parts = [
        f"{count:,} {what}"
        for count, what in (
            (run.rows_inserted, "new"),
            (run.rows_updated, "updated"),
            (run.rows_deleted, "deleted"),
            (unchanged or 0, "unchanged"),
        )
        if count
    ]
    return ", ".join(parts)


def rate_text(rows: int, seconds: float | None) -> str:
    if not seconds or seconds <= 0 or rows <= 0:
        return "-"
    return f"{rows / seconds:,.0f} rows/s"


def summary(run: SyncRun, *, now: datetime | None = None) -> str:
    """The run in one line, first on its page: "Loaded 300,000 rows in 3.5 s (300,000 new); 2 columns
    encrypted", "Failed after 2.1 s: column AMOUNT ...", "Running: extract, 12,000 rows so far"."""
    now = now or timezone.now()
    duration = run.duration
    took = seconds_text(duration.total_seconds()) if duration is not None else ""
    if run.status == RunStatus.QUEUED:
        if run.not_before and run.not_before > now:
            return f"Waiting to retry at {timezone.localtime(run.not_before):%H:%M:%S}."
        return f"Queued {duration_text((now - run.queued_at).total_seconds())} ago, waiting for a worker."
    if run.status == RunStatus.RUNNING:
        return f"Running: {run.stage or 'starting'}, {run.progress_rows:,} rows so far, for {took}."
    if run.status == RunStatus.SUCCEEDED:
        changes = _changes(run)
        text = f"Loaded {run.rows_extracted:,} rows in {took}" + (f" ({changes})" if changes else "")
        if run.rows_extracted and not run.rows_written and run.mode != "full":
            text = f"Read {run.rows_extracted:,} rows in {took}; nothing changed"
        encrypted, compressed = protection_counts(run.checks)
        extras = [
            f"{count} column{'s' if count != 1 else ''} {what}"
            for count, what in ((encrypted, "encrypted"), (compressed, "compressed"))
            if count
        ]
        return "; ".join([text, *extras]) + "."
    if run.status == RunStatus.SKIPPED:
        return f"Skipped: {sentence(run.skip_reason) or 'no reason recorded.'}"
    if run.status == RunStatus.CANCELLED:
        reason = sentence(run.error_message)
        if reason.lower().startswith("cancelled"):
            return f"{reason[:-1]}; the target was left as it was."
        return f"Cancelled{' after ' + took if took else ''}: {reason or 'no reason recorded.'}"
    return f"Failed{' after ' + took if took else ''}: {sentence(run.error_message) or 'no error recorded.'}"
