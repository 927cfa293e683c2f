"""What every fault case measures, and where it writes it.

- `Reader`: a thread that reads the target every ~30 ms during the fault (a count and a checksum of each read)
  and keeps each distinct version it saw and its slowest read; a reader must only ever see the old or the
  new complete version.
- `expected_rows` / `compare`: rows lost and duplicated against what the source holds.
- `leftovers`: what a fault left once the table recovered: staging tables, a held table lock, runs still
  queued or running, tasks locked in the ORM broker's queue.
- `record`: one JSON line per case into the results file (`FDM_FAULTS_RESULTS`, default
  `<tmp>/fdm-faults-results.jsonl`); `python -m tests.faults.report` turns it into the table in
  docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from django.utils import timezone

RESULTS_ENV = "FDM_FAULTS_RESULTS"
READ_INTERVAL_SECONDS = 0.03

Version = tuple[int, int, str]  # rows, distinct keys, checksum


def results_path() -> Path:
    return Path(os.environ.get(RESULTS_ENV) or Path(tempfile.gettempdir()) / "fdm-faults-results.jsonl")


def version_sql(relation: str) -> str:
    """Rows, distinct keys and a checksum of a target table of the seeded shape (txn_id, amount, ...)."""
    return (
        f"SELECT count(*), count(DISTINCT txn_id), "  # noqa: S608 - the test's own relation
        f"coalesce(sum(txn_id), 0)::text || '/' || coalesce(sum(amount), 0)::text FROM {relation}"
    )


def read_version(dsn: str, relation: str) -> Version:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows, keys, checksum = conn.execute(version_sql(relation)).fetchall()[0]
        return int(rows), int(keys), str(checksum)


def expected_version(keys: range) -> Version:
    """What `version_sql` reads from a target holding exactly the seeded rows `keys` (amount = key + 0.25)."""
    amount = sum(Decimal(key) + Decimal("0.25") for key in keys)
    return len(keys), len(keys), f"{sum(keys)}/{amount}"


class Reader:
    """Reads the target every READ_INTERVAL_SECONDS on a connection of its own while running."""

    def __init__(self, dsn: str, relation: str):
        self.dsn = dsn
        self.relation = relation
        self.seen: dict[Version, int] = {}
        self.reads = 0
        self.slowest = 0.0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="fault reader", daemon=True)

    def _read(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True, application_name="fdm fault reader") as conn:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    rows, keys, checksum = conn.execute(version_sql(self.relation)).fetchall()[0]
                except psycopg.Error as exc:
                    self.errors.append(str(exc).splitlines()[0])
                    return
                version = (int(rows), int(keys), str(checksum))
                self.seen[version] = self.seen.get(version, 0) + 1
                self.reads += 1
                self.slowest = max(self.slowest, time.monotonic() - started)
                self._stop.wait(READ_INTERVAL_SECONDS)

    def __enter__(self) -> Reader:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    def verdict(self, old: Version, new: Version) -> str:
        """ "old", "new", "old, new", or what else it saw (a failure)."""
        names = {old: "old", new: "new"}
        others = [version for version in self.seen if version not in names]
        if others or self.errors:
            return f"OTHER: {others} {self.errors}"
        return ", ".join(names[version] for version in (old, new) if version in self.seen)


def compare(dsn: str, relation: str, keys: range) -> tuple[int, int, bool]:
    """Rows lost, rows duplicated, and whether the target holds exactly the seeded rows `keys`."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(f"SELECT txn_id, amount FROM {relation}").fetchall()  # noqa: S608
    held = [int(key) for key, _ in rows]
    lost = len(set(keys) - set(held))
    duplicated = len(held) - len(set(held))
    exact = sorted(rows) == [(Decimal(key), Decimal(key) + Decimal("0.25")) for key in keys]
    return lost, duplicated, exact


def run_sessions(dsn: str, table_name: str) -> list[tuple]:
    """The target sessions of runs of `table_name`: the run's own (`fdm sync`) and its COPY streams."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(
            "SELECT pid, application_name, state, wait_event_type, left(query, 60) FROM pg_stat_activity "
            "WHERE application_name IN (%s, %s)",
            (f"fdm sync {table_name}", f"fdm copy {table_name}"),
        ).fetchall()


def wait_for(
    condition: Callable[[], Any], *, timeout: float, what: str, alive: Callable[[], None] | None = None
) -> Any:
    """Poll `condition` until it is truthy (every 10 ms: the faults strike at points that pass quickly)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if alive is not None:
            alive()
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def leftovers(dsn: str, table_name: str) -> list[str]:
    """What a fault left behind for `table_name` once it recovered; [] when nothing."""
    from syncengine.models import SyncRun
    from syncengine.pipeline.load import STAGING_SCHEMA, staging_prefix
    from syncengine.pipeline.locks import held_table_lock_keys, table_lock_key

    left: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        staging = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND starts_with(tablename, %s)",
            (STAGING_SCHEMA, staging_prefix(table_name)),
        ).fetchall()
        left += [f"staging table {name}" for (name,) in staging]
        if table_lock_key(table_name) in held_table_lock_keys(conn):
            left.append("table lock held")
    runs = SyncRun.objects.filter(table_name=table_name)
    left += [f"run #{run.pk} {run.status}" for run in runs.filter(status__in=("queued", "running"))]
    for run in runs.exclude(task_id=""):
        left += [
            f"run #{run.pk}'s task locked in the queue"
            for task in queued_task(run.task_id)
            if task.lock > timezone.now()
        ]
    return left


def queued_task(task_id: str) -> list:
    """The ORM broker's queue entries of a task."""
    from django_q.models import OrmQ

    return [task for task in OrmQ.objects.all() if task.task_id() == task_id]


@dataclass
class CaseResult:
    """One row of the results table."""

    case: str
    fault: str
    strikes: str
    mode: str
    executor: str
    struck_at: str = ""  # where the run was when the fault struck, from its record
    committed: bool = False  # the faulted run's publish committed (the target's state names it)
    rows_lost: int = 0
    rows_duplicated: int = 0
    reader_saw: str = ""
    reader_reads: int = 0
    reader_slowest_seconds: float = 0.0
    dead_session_seconds: float | None = None  # fault until the faulted run's sessions were gone
    status: str = ""
    message: str = ""
    left_behind: list[str] = field(default_factory=list)
    seconds_to_healthy: float = 0.0
    notes: str = ""


def record(result: CaseResult) -> None:
    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps({**asdict(result), "at": timezone.now().isoformat()}) + "\n")
