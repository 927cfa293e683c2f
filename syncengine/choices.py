"""Choice sets for run records. Those the pipeline also reports take their values from its enums
(`syncconfig.choices.mirrors` checks that the members match)."""

from __future__ import annotations

from collections.abc import Collection

from django.db import models

from syncconfig.choices import mirrors
from syncengine.pipeline.reconcile.result import CheckStatus


class RunStatus(models.TextChoices):
    """Where a run is in its life: queued -> running -> one of the terminal states.

    A run may also go straight from queued to a terminal state: cancelled before a worker took it, skipped
    because its table was disabled, or failed by the reaper because no worker ever took it.
    """

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    CANCELLED = "cancelled", "Cancelled"

    @classmethod
    def terminal(cls) -> frozenset[str]:
        """States a run never leaves."""
        return frozenset({cls.SUCCEEDED, cls.FAILED, cls.SKIPPED, cls.CANCELLED})

    @classmethod
    def active(cls) -> frozenset[str]:
        """States in which a run still holds, or waits for, a worker."""
        return frozenset({cls.QUEUED, cls.RUNNING})

    @classmethod
    def outcomes(cls) -> tuple[RunStatus, ...]:
        """Terminal states that say something about the table's data. A skipped run only says that another run
        held the table (or that it was disabled), so it never hides the outcome of the run before it."""
        return (cls.SUCCEEDED, cls.FAILED, cls.CANCELLED)

    @classmethod
    def in_order(cls, statuses: Collection[str] | None = None) -> tuple[RunStatus, ...]:
        """`statuses` (every state when None) in the order of a run's life, for output that must not shuffle
        (the sets above have no order)."""
        return tuple(status for status in cls if statuses is None or status in statuses)


class SliceStatus(models.TextChoices):
    """Where one slice of a sliced run is: queued (again, after a transient failure or a dead worker) ->
    running -> done, or failed for good (which fails the run)."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class TableState(models.TextChoices):
    """Where a table stands, at a glance (selectors.tables_with_state computes it).

    When several apply, the first of these wins: disabled (not enabled) > running (a run is queued or running) >
    failing (its latest outcome is a failure) > late (past its freshness limit) > never (no run has succeeded
    yet) > healthy. The members' order here is the order lists sort and show them in: what needs a person first.
    """

    FAILING = "failing", "Failing"
    LATE = "late", "Late"
    RUNNING = "running", "Running"
    NEVER = "never", "Never run"
    HEALTHY = "healthy", "Healthy"
    DISABLED = "disabled", "Disabled"


class RunTrigger(models.TextChoices):
    """Who asked for the run."""

    SCHEDULE = "schedule", "Schedule"
    ADMIN = "admin", "Admin"
    API = "api", "API"
    COMMAND = "command", "Command"
    BACKFILL = "backfill", "Backfill"  # a cursor range re-extracted (from the command, admin or API)


class ErrorKind(models.TextChoices):
    """Whether a failure is worth another attempt (transient) or needs a person (terminal)."""

    TERMINAL = "terminal", "Terminal"
    TRANSIENT = "transient", "Transient"


class LogLevel(models.TextChoices):
    DEBUG = "debug", "Debug"
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"


@mirrors(CheckStatus)
class RunCheckStatus(models.TextChoices):
    """The light reconciliation check after a run (counts and sums on both sides); blank before it ran."""

    EQUAL = CheckStatus.EQUAL.value, "Equal"
    MISMATCH = CheckStatus.MISMATCH.value, "Mismatch"
    SKIPPED = CheckStatus.SKIPPED.value, "Skipped"


class ReconciliationStatus(models.TextChoices):
    """Where a reconciliation is: queued -> running -> equal, different or failed (the check could not run)."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    EQUAL = "equal", "Equal"
    DIFFERENT = "different", "Different"
    FAILED = "failed", "Failed"

    @classmethod
    def terminal(cls) -> frozenset[str]:
        return frozenset({cls.EQUAL, cls.DIFFERENT, cls.FAILED})
