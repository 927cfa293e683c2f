"""A stateful property test: hypothesis interleaves source inserts, updates and deletes (ties at the watermark
included: several rows sharing the boundary value, late arrivals carrying it), incremental and full runs, and
runs that crash at a stage, and after every step compares the target with an in-memory oracle.

The oracle: an incremental run extracts the source rows whose cursor is at or above the last watermark
(inclusive) and upserts them; with `deletes: hard` it also removes keys gone from the source, so the target
equals the source; without, it is a superset of the source as of the last successful run, with its latest
values. A full refresh makes the target equal the source. A run that crashes before its publish committed
(cancelled at a batch boundary, or its progress callback raising at extract, load or just before the publish)
changes nothing; one whose callback raises after the commit published. Some runs are killed instead (SIGKILL
of a forked process at the same points): the same must hold, and the staging table such a run leaves is
dropped by the table's next run. Every step also checks that the table's lock is free (once the killed run's
session has ended) and that no staging table is left but a killed run's.

Bounded for the default run (derandomized, so a CI failure reproduces); FDM_PROPERTY_EXAMPLES raises the
number of examples (`make faults` runs 60).
"""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants
# ruff: noqa: F811 - the imported fixtures are parameters of the tests that use them

from __future__ import annotations

import collections
import itertools
import multiprocessing
import os
import signal
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from syncengine.pipeline.errors import RunCancelled
from syncengine.pipeline.runner import run_sync
from syncengine.pipeline.spec import DeleteMode, DeletesSpec, SourceRef, SyncMode, TableSpec, TargetRef

from .pipeline_fixtures import leftovers, source, source_connection, target  # noqa: F401 - fixtures
from .pipeline_fixtures import settings as snowflake_settings  # noqa: F401 - fixture

pytestmark = pytest.mark.faults

EXAMPLES = int(os.environ.get("FDM_PROPERTY_EXAMPLES", "8"))
CRASHES = ("cancel", "extract", "load", "before_publish", "after_commit")


KILLS = ("extract", "load", "before_publish", "after_commit")


def _crash_point(where: str, stage: str, publishes: list[int], rows: int) -> bool:
    """Whether the run's progress report (`stage`, `rows`) is the point `where`; the publish reports twice:
    before its transaction (0) and after the commit."""
    if stage == "publish":
        publishes.append(rows)
    return (
        (where in ("extract", "load") and stage == where)
        or (where == "before_publish" and stage == "publish" and len(publishes) == 1)
        or (where == "after_commit" and stage == "publish" and len(publishes) == 2)
    )


def _run_until_killed(spec: TableSpec, snowflake: Any, dsn: str, where: str, full: bool) -> None:
    publishes: list[int] = []

    def progress(stage: str, rows: int) -> None:
        if _crash_point(where, stage, publishes, rows):
            os.kill(os.getpid(), signal.SIGKILL)

    run_sync(spec, source=snowflake, target_dsn=dsn, full_refresh=full, on_progress=progress)


class Crash(Exception):
    """Raised from the run's progress callback: the run's process dies there, as far as the run can tell."""


class SyncMachine(RuleBasedStateMachine):
    # Set by the test: the emulator source, its settings, the target database and a query on it.
    source: Any = None
    snowflake: Any = None
    dsn: Any = None
    query: Any = None
    counter = itertools.count()
    steps: collections.Counter[str] = collections.Counter()  # what the examples did, printed at the end

    def __init__(self) -> None:
        super().__init__()
        self.name = f"prop_{next(self.counter)}_{uuid.uuid4().hex[:6]}"
        self.table = self.source.table(self.name.upper())
        self.source.sql(
            f"CREATE TABLE {self.table} (ID NUMBER(38,0), VAL NUMBER(18,0), UPDATED_AT NUMBER(38,0))"
        )
        self.rows: dict[int, tuple[int, int]] = {}  # the source: id -> (val, cursor)
        self.expected: dict[int, tuple[int, int]] = {}  # what the target must hold
        self.watermark: int | None = None
        self.clock = 0
        self.ids = itertools.count(1)
        self.spec: Any = None  # a TableSpec once configured
        self.staging_may_be_left = False

    @initialize(hard_deletes=st.booleans(), batch_size=st.sampled_from([1, 2, 5]))
    def configure(self, hard_deletes: bool, batch_size: int) -> None:
        deletes = DeletesSpec(mode=DeleteMode.HARD, max_ratio=1.0) if hard_deletes else DeletesSpec()
        self.spec = TableSpec(
            name=self.name,
            source=SourceRef(self.source.database, "PUBLIC", self.name.upper()),
            target=TargetRef("public", self.name),
            mode=SyncMode.INCREMENTAL,
            watermark_column="UPDATED_AT",
            primary_key=("ID",),
            batch_size=batch_size,
            deletes=deletes,
        )

    # --- the source ---------------------------------------------------------------------------------

    def _cursor(self, at_boundary: bool) -> int:
        """The watermark's own value (a late arrival or an update tied with the boundary), or a new tick."""
        if at_boundary and self.watermark is not None:
            return self.watermark
        self.clock += 1
        return self.clock

    @rule(count=st.integers(1, 3), at_boundary=st.booleans(), value=st.integers(0, 999))
    def insert(self, count: int, at_boundary: bool, value: int) -> None:
        self.steps["insert at the boundary" if at_boundary and self.watermark is not None else "insert"] += 1
        cursor = self._cursor(at_boundary)  # several rows share it: a tie if it becomes the boundary
        for _ in range(count):
            key = next(self.ids)
            self.source.sql(f"INSERT INTO {self.table} VALUES (?, ?, ?)", (key, value, cursor))
            self.rows[key] = (value, cursor)

    @precondition(lambda self: self.rows)
    @rule(data=st.data(), at_boundary=st.booleans(), value=st.integers(0, 999))
    def update(self, data, at_boundary: bool, value: int) -> None:
        key = data.draw(st.sampled_from(sorted(self.rows)))
        self.steps["update at the boundary" if at_boundary and self.watermark is not None else "update"] += 1
        cursor = self._cursor(at_boundary)
        self.source.sql(f"UPDATE {self.table} SET VAL = ?, UPDATED_AT = ? WHERE ID = ?", (value, cursor, key))
        self.rows[key] = (value, cursor)

    @precondition(lambda self: self.watermark is not None)
    @rule(data=st.data(), new_row=st.booleans(), value=st.integers(0, 999))
    def at_the_boundary(self, data, new_row: bool, value: int) -> None:
        """A late arrival, or an update, carrying exactly the watermark's value: the inclusive boundary."""
        if new_row or not self.rows:
            self.insert(count=1, at_boundary=True, value=value)
        else:
            self.update(data, at_boundary=True, value=value)

    @precondition(lambda self: self.rows)
    @rule(data=st.data())
    def delete(self, data) -> None:
        key = data.draw(st.sampled_from(sorted(self.rows)))
        self.steps["delete"] += 1
        self.source.sql(f"DELETE FROM {self.table} WHERE ID = ?", (key,))
        del self.rows[key]

    # --- runs ---------------------------------------------------------------------------------------

    def _published(self, *, full: bool) -> None:
        """The oracle for a run that published."""
        if full or self.spec.deletes.mode == DeleteMode.HARD:
            self.expected = dict(self.rows)
        else:
            self.expected.update(
                (key, row)
                for key, row in self.rows.items()
                if self.watermark is None or row[1] >= self.watermark
            )
        extracted = [
            row[1] for row in self.rows.values() if full or self.watermark is None or row[1] >= self.watermark
        ]
        if extracted:
            self.watermark = max(self.watermark or 0, *extracted) if not full else max(extracted)

    def _sync(self, **kwargs):
        return run_sync(self.spec, source=self.snowflake, target_dsn=self.dsn, **kwargs)

    @rule(full=st.booleans())
    def run(self, full: bool) -> None:
        self.steps["full run" if full else "incremental run"] += 1
        self.staging_may_be_left = False
        self._sync(full_refresh=full)
        self._published(full=full)

    @rule(where=st.sampled_from(CRASHES), full=st.booleans())
    def crash(self, where: str, full: bool) -> None:
        self.steps[f"crash {where}"] += 1
        self.staging_may_be_left = False  # the run drops what a killed one left, then its own
        publishes: list[int] = []

        def progress(stage: str, rows: int) -> None:
            if _crash_point(where, stage, publishes, rows):
                raise Crash(where)

        try:
            self._sync(full_refresh=full, on_progress=progress, should_cancel=lambda: where == "cancel")
        except (Crash, RunCancelled):
            if where == "after_commit":
                self._published(full=full)
        else:
            self._published(full=full)  # the crash point never came (no rows to extract or load)

    @rule(where=st.sampled_from(KILLS), full=st.booleans())
    def kill(self, where: str, full: bool) -> None:
        """The run's process is killed (SIGKILL, a forked child) at a stage: its sessions end with it."""
        child = multiprocessing.get_context("fork").Process(
            target=_run_until_killed, args=(self.spec, self.snowflake, self.dsn, where, full)
        )
        child.start()
        child.join(timeout=120)
        assert child.exitcode in (0, -signal.SIGKILL), child.exitcode
        self.steps[f"kill {where}" if child.exitcode else f"kill {where} (never came)"] += 1
        deadline = time.monotonic() + 30
        while self.query(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = %s", (f"fdm sync {self.name}",)
        ):
            assert time.monotonic() < deadline, "the killed run's session did not end"
            time.sleep(0.05)
        if child.exitcode == 0 or where == "after_commit":
            self._published(full=full)
        # A killed run leaves its staging table; the next run of the table drops it.
        self.staging_may_be_left = child.exitcode != 0

    # --- what must hold after every step --------------------------------------------------------------

    @invariant()
    def the_target_matches_the_oracle(self) -> None:
        if self.spec is None or not self.query(f"SELECT to_regclass('public.{self.name}')")[0][0]:
            assert not self.expected
            return
        target = {
            int(key): (int(val), int(cursor))
            for key, val, cursor in self.query(f"SELECT id, val, updated_at FROM public.{self.name}")
        }
        assert target == self.expected
        if self.spec.deletes.mode != DeleteMode.HARD:
            assert set(target) >= set(self.expected)
        stored = self.query(
            "SELECT watermark->>'value' FROM _fdm.sync_state WHERE table_name = %s", (self.name,)
        )
        stored_value = stored[0][0] if stored else None
        assert (Decimal(stored_value) if stored_value is not None else None) == self.watermark
        left = leftovers(self.query, self.dsn, self.name)
        assert left["lock_free"]
        assert self.staging_may_be_left or left["staging"] == []


def test_the_target_follows_the_source_through_any_interleaving_of_changes_runs_and_crashes(
    source, snowflake_settings, scratch_database, target
):
    SyncMachine.source, SyncMachine.snowflake = source, snowflake_settings
    SyncMachine.dsn, SyncMachine.query = scratch_database, staticmethod(target)
    run_state_machine_as_test(
        SyncMachine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=10,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    print(f"\n{EXAMPLES} examples: {dict(sorted(SyncMachine.steps.items()))}")
