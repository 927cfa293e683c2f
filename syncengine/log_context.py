"""Log lines of a run's execution carry its `run_id` and `table` (fdm.log.log_context)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fdm.log import log_context
from syncengine.models import SyncRun


@contextmanager
def run_log_context(run_id: int) -> Iterator[None]:
    """Bind the run's id and table name to every line logged in the block."""
    table = SyncRun.objects.filter(pk=run_id).values_list("table_name", flat=True).first()
    with log_context(run_id=run_id, table=table):
        yield
