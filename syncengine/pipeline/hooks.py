"""How a run talks to its caller while it works: log lines, progress counts and a cancel check.

The callers (a worker, a management command, a test) pass plain callables; each has a silent default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# log(level, message, **fields): level is "info", "warning" or "error"; fields are JSON-safe values.
Log = Callable[..., None]
# progress(stage, rows so far): stage is "extract", "load" or "publish".
Progress = Callable[[str, int], None]
# Asked between batches and before publishing; True stops the run with RunCancelled.
CancelCheck = Callable[[], bool]


def no_log(level: str, message: str, **fields: object) -> None:
    return None


def no_progress(stage: str, rows: int) -> None:
    return None


def never_cancelled() -> bool:
    return False


@dataclass(frozen=True)
class Hooks:
    log: Log = no_log
    progress: Progress = no_progress
    cancelled: CancelCheck = never_cancelled

    @classmethod
    def of(cls, *, log: Log | None, progress: Progress | None, cancelled: CancelCheck | None) -> Hooks:
        return cls(
            log=log or no_log, progress=progress or no_progress, cancelled=cancelled or never_cancelled
        )
