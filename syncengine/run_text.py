"""A run in words: the one line a worker prints when a run ends, and the summary the run's page opens with.

One home for how runs are described, so the worker's output, the admin and the dashboard say the same thing.
"""

from __future__ import annotations

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
