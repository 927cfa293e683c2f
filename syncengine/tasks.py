"""Task-queue entry points. Each takes ids, not objects, and hands over to a service at once."""

from __future__ import annotations

import logging

from syncengine import reaper, services
from syncengine.choices import RunStatus
from syncengine.log_context import run_log_context
from syncengine.models import SyncRun
from syncengine.run_text import outcome_line

# Every run that ends on a worker leaves one line here, failures included, so that a log system reading the
# workers' output sees each outcome: "run #12 of transactions failed (terminal): <the error's first line>".
logger = logging.getLogger("syncengine.runs")


def execute_run(run_id: int) -> str:
    """Execute a queued run; returns its final status (kept as the task's result)."""
    with run_log_context(run_id):
        run = services.run_execute(run_id=run_id)
        if run.is_terminal:
            _print_outcome(run)
    return run.status


def execute_slice(slice_id: int) -> str | None:
    """Stage one slice of a sliced run (`sliced_runs`); returns the slice's status."""
    from syncengine import sliced_runs

    piece = sliced_runs.slice_execute(slice_id=slice_id)
    return piece.status if piece is not None else None


def publish_sliced_run(run_id: int) -> str:
    """Publish a sliced run whose slices are all staged; returns the run's final status."""
    from syncengine import sliced_runs

    with run_log_context(run_id):
        run = sliced_runs.sliced_publish(run_id=run_id)
        if run.is_terminal:
            _print_outcome(run)
    return run.status


def dispatch_run(run_id: int) -> str | None:
    """Send a retry whose backoff has passed to the queue (fired by its one-off schedule)."""
    run = services.run_dispatch(run_id=run_id)
    return run.status if run is not None else None


def scheduled_sync(table_id: int) -> str | None:
    """A table's schedule fired: record a run (queued, or skipped with the reason)."""
    run = services.run_enqueue_scheduled(table_id=table_id)
    return f"run #{run.pk} {run.status}" if run is not None else None


def reap_stale_runs() -> int:
    """Fail runs whose worker is gone or that no worker took; returns how many."""
    failed = reaper.runs_fail_stale()
    for run in failed:
        _print_outcome(run)  # the reaper may find a run's data committed: then it succeeded
    return len(failed)


def _print_outcome(run: SyncRun) -> None:
    (logger.info if run.status == RunStatus.SUCCEEDED else logger.warning)(outcome_line(run))


def execute_reconciliation(reconciliation_id: int) -> str:
    """Execute a queued reconciliation; returns its final status."""
    from syncengine import reconciliations

    return reconciliations.reconciliation_execute(reconciliation_id=reconciliation_id).status


def scheduled_reconciliation(table_id: int) -> str | None:
    """A table's reconcile schedule fired: queue a deep reconciliation of it (none for a deleted or disabled
    table)."""
    from syncconfig.models import TableConfig
    from syncengine import reconciliations
    from syncengine.choices import RunTrigger

    table = TableConfig.objects.filter(pk=table_id, enabled=True).first()
    if table is None:
        return None
    reconciliation = reconciliations.reconciliation_enqueue(
        table=table, trigger=RunTrigger.SCHEDULE, deep=True
    )
    return f"reconciliation #{reconciliation.pk} queued"
