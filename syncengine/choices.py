"""Choice sets for run records."""

from __future__ import annotations

from django.db import models


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


class RunTrigger(models.TextChoices):
    """Who asked for the run."""

    SCHEDULE = "schedule", "Schedule"
    ADMIN = "admin", "Admin"
    API = "api", "API"
    COMMAND = "command", "Command"


class ErrorKind(models.TextChoices):
    """Whether a failure is worth another attempt (transient) or needs a person (terminal)."""

    TERMINAL = "terminal", "Terminal"
    TRANSIENT = "transient", "Transient"


class LogLevel(models.TextChoices):
    DEBUG = "debug", "Debug"
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"
