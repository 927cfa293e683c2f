"""Prometheus metrics for syncs, read from the database at each scrape.

Runs execute in worker processes (`manage.py qcluster`), so counters kept in the web process that serves
/metrics would never see them. The database is the source of truth: each scrape derives the metrics from it
with a handful of small queries, and every web process (gunicorn worker or replica) reports the same values.

`register()` adds the collector to prometheus_client's default registry, once per process; it is called from
`SyncEngineConfig.ready()`. What each metric means is listed in docs/operations.md.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.db.models import Count, Max, Min, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily, Metric

from syncconfig.models import TableConfig
from syncengine import selectors
from syncengine.choices import ReconciliationStatus, RunCheckStatus, RunStatus
from syncengine.models import Reconciliation, SyncRun
from syncengine.reconciliations import reconciliation_latest_by_table
from syncengine.schedules import shape_for

logger = logging.getLogger("syncengine.metrics")

ROW_KINDS = ("extracted", "loaded", "inserted", "updated", "deleted")
BYTE_KINDS = ("extracted", "loaded")
STAGES = ("extract", "transform", "load", "publish")
# What a scrape reads of a table's latest runs.
RUN_FIELDS = (
    "id",
    "status",
    "started_at",
    "finished_at",
    *(f"rows_{kind}" for kind in ROW_KINDS),
    *(f"bytes_{kind}" for kind in BYTE_KINDS),
    *(f"{stage}_seconds" for stage in STAGES),
    "reconciliation_status",
)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    documentation: str
    labels: tuple[str, ...] = ()
    counter: bool = False

    def family(self) -> GaugeMetricFamily | CounterMetricFamily:
        if self.counter:
            return CounterMetricFamily(self.name, self.documentation, labels=list(self.labels))
        return GaugeMetricFamily(self.name, self.documentation, labels=list(self.labels))


TABLE_ENABLED = MetricSpec("fdm_table_enabled", "1 when the table is enabled, 0 when disabled.", ("table",))
TABLE_SCHEDULED = MetricSpec(
    "fdm_table_scheduled",
    "1 when the table is synced on a schedule (enabled, and hourly, daily or cron rather than manual).",
    ("table",),
)
TABLE_MAX_STALENESS = MetricSpec(
    "fdm_table_max_staleness_seconds",
    "The table's freshness limit (max_staleness_minutes); absent for tables without one.",
    ("table",),
)
TABLE_LAST_SUCCESS = MetricSpec(
    "fdm_table_last_success_timestamp_seconds",
    "When the table's latest successful run finished (Unix time); absent before its first success.",
    ("table",),
)
TABLE_FRESHNESS = MetricSpec(
    "fdm_table_freshness_seconds",
    "Seconds since the table's latest successful run finished; since the table was configured when it has "
    "never succeeded.",
    ("table",),
)
TABLE_LAST_RUN_STATUS = MetricSpec(
    "fdm_table_last_run_status",
    "1 for the outcome (succeeded, failed or cancelled) of the table's latest run that had one, 0 for the "
    "others; skipped runs are passed over.",
    ("table", "status"),
)
TABLE_LAST_RUN = MetricSpec(
    "fdm_table_last_run_timestamp_seconds",
    "When the run behind fdm_table_last_run_status finished (Unix time).",
    ("table",),
)
TABLE_RUNS_ACTIVE = MetricSpec(
    "fdm_table_runs_active", "Runs of the table that are queued or running.", ("table",)
)
TABLE_LAST_SUCCESS_ROWS = MetricSpec(
    "fdm_table_last_success_rows",
    "Rows handled by the table's latest successful run: extracted from Snowflake, loaded into staging, "
    "inserted, updated and deleted in the target.",
    ("table", "kind"),
)
TABLE_LAST_SUCCESS_BYTES = MetricSpec(
    "fdm_table_last_success_bytes",
    "Bytes extracted from Snowflake and loaded into staging by the table's latest successful run.",
    ("table", "kind"),
)
TABLE_LAST_SUCCESS_DURATION = MetricSpec(
    "fdm_table_last_success_duration_seconds",
    "Seconds the table's latest successful run spent per stage (extract, transform, load, publish) and in "
    "all (total, from start to finish).",
    ("table", "stage"),
)
RUNS = MetricSpec(
    "fdm_runs",
    "Finished runs by table and outcome, counted from the run history (the table label is the name the run "
    "was requested under).",
    ("table", "status"),
    counter=True,
)
RUNS_IN_PROGRESS = MetricSpec(
    "fdm_runs_in_progress",
    "Runs queued (including retries waiting out their backoff) or running, across all tables.",
    ("status",),
)
RUN_OLDEST_QUEUED_AGE = MetricSpec(
    "fdm_run_oldest_queued_age_seconds",
    "Seconds the oldest queued run has been due without a worker taking it (0 when none is due).",
)
RUN_LONGEST_RUNNING = MetricSpec(
    "fdm_run_longest_running_seconds",
    "Seconds since the longest-running run started (0 when none is running).",
)
WORKER_LAST_TASK = MetricSpec(
    "fdm_worker_last_task_timestamp_seconds",
    "When a task-queue worker last finished any task (Unix time); the stale-run reaper alone runs every "
    "FDM_REAPER_INTERVAL_MINUTES. Absent before the first task.",
)
SCHEDULE_OVERDUE = MetricSpec(
    "fdm_schedule_overdue_seconds",
    "Seconds the most overdue task-queue schedule is past its next run (0 when none is due); the scheduler "
    "in qcluster fires due schedules about every 30 seconds.",
)
COLLECTOR_UP = MetricSpec(
    "fdm_collector_up", "1 when this scrape could read fdm's database; 0 when it could not (no fdm_* values)."
)
RECONCILIATION_LAST_STATUS = MetricSpec(
    "fdm_reconciliation_last_status",
    "1 for the result (equal, different or failed) of the table's latest finished reconciliation, 0 for the "
    "others; absent before its first.",
    ("table", "status"),
)
RECONCILIATION_LAST_DIFFERENCES = MetricSpec(
    "fdm_reconciliation_last_differences",
    "Differences the table's latest finished reconciliation found: differing keys (deep) or mismatching "
    "counts and sums (light).",
    ("table",),
)
RECONCILIATION_LAST_DURATION = MetricSpec(
    "fdm_reconciliation_last_duration_seconds",
    "Seconds the table's latest finished reconciliation took.",
    ("table", "deep"),
)
RECONCILIATION_LAST = MetricSpec(
    "fdm_reconciliation_last_timestamp_seconds",
    "When the table's latest finished reconciliation finished (Unix time).",
    ("table",),
)
RECONCILIATION_RUN_CHECK_MISMATCH = MetricSpec(
    "fdm_reconciliation_run_check_mismatch",
    "1 when the light check after the table's latest successful run found counts or sums that differ from "
    "Snowflake's, else 0.",
    ("table",),
)
RECONCILIATION_SPECS = (
    RECONCILIATION_LAST_STATUS,
    RECONCILIATION_LAST_DIFFERENCES,
    RECONCILIATION_LAST_DURATION,
    RECONCILIATION_LAST,
    RECONCILIATION_RUN_CHECK_MISMATCH,
)

SPECS = (
    TABLE_ENABLED,
    TABLE_SCHEDULED,
    TABLE_MAX_STALENESS,
    TABLE_LAST_SUCCESS,
    TABLE_FRESHNESS,
    TABLE_LAST_RUN_STATUS,
    TABLE_LAST_RUN,
    TABLE_RUNS_ACTIVE,
    TABLE_LAST_SUCCESS_ROWS,
    TABLE_LAST_SUCCESS_BYTES,
    TABLE_LAST_SUCCESS_DURATION,
    RUNS,
    RUNS_IN_PROGRESS,
    RUN_OLDEST_QUEUED_AGE,
    RUN_LONGEST_RUNNING,
    WORKER_LAST_TASK,
    SCHEDULE_OVERDUE,
    *RECONCILIATION_SPECS,
    COLLECTOR_UP,
)


@dataclass
class Snapshot:
    """What one scrape read from the database."""

    now: datetime
    tables: list[TableConfig]
    runs: dict[int, SyncRun]
    # table id -> (its latest successful run's id, its latest outcome's id)
    latest_runs: dict[int, tuple[int | None, int | None]] = field(default_factory=dict)
    active: dict[int | None, dict[str, int]] = field(default_factory=dict)
    oldest_due: datetime | None = None
    earliest_start: datetime | None = None
    finished: dict[str, dict[str, int]] = field(default_factory=dict)
    last_task: datetime | None = None
    oldest_schedule_due: datetime | None = None
    reconciliations: dict[str, Reconciliation] = field(default_factory=dict)  # the latest finished, by table


class FinishedRunCounts:
    """Finished runs counted by (table name, status), without reading the whole history at every scrape.

    A finished run never changes status. So once the runs up to some id have been counted (`settled_id`),
    that count only grows when one of the runs that were still queued or running then (`open_ids`, a handful)
    finishes, until old runs are purged (`runs_purge`), which the periodic full recount follows. A scrape reads those, folds in the runs queued more than SETTLE_AFTER
    ago (a primary-key range), and counts the few newer ones afresh. The margin keeps a run whose inserting
    transaction has not committed yet from being passed over. The whole history is read on a process's first
    scrape and again every RECOUNT_AFTER, so the counts also follow a database restored from a backup.
    Must be called inside one snapshot (REPEATABLE READ), so that the reads agree with each other.
    """

    SETTLE_AFTER = timedelta(minutes=10)
    RECOUNT_AFTER = timedelta(hours=6)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget what was counted; the next read counts the whole history again."""
        self._settled_id = 0
        self._settled: Counter[tuple[str, str]] = Counter()
        self._open_ids: set[int] = set()
        self._counted_at: datetime | None = None

    def read(self, *, now: datetime) -> dict[str, dict[str, int]]:
        with self._lock:
            if self._counted_at is None or now - self._counted_at > self.RECOUNT_AFTER:
                self.reset()
                self._counted_at = now
            self._settle_open_runs()
            self._fold(cutoff=now - self.SETTLE_AFTER)
            counts = Counter(self._settled)
            counts.update(self._finished_counts(SyncRun.objects.filter(pk__gt=self._settled_id)))
        by_table: dict[str, dict[str, int]] = {}
        for (table_name, status), count in counts.items():
            by_table.setdefault(table_name, {})[status] = count
        return by_table

    def _settle_open_runs(self) -> None:
        if not self._open_ids:
            return
        rows = list(
            SyncRun.objects.filter(pk__in=self._open_ids).values_list("pk", "table_name", "status").order_by()
        )
        still_open = set()
        for pk, table_name, status in rows:
            if status in RunStatus.terminal():
                self._settled[(table_name, status)] += 1
            else:
                still_open.add(pk)
        self._open_ids = still_open  # ids no longer found were deleted: nothing to count

    def _fold(self, *, cutoff: datetime) -> None:
        newer = SyncRun.objects.filter(pk__gt=self._settled_id)
        settled_id = newer.filter(queued_at__lt=cutoff).aggregate(last=Max("pk"))["last"]
        if settled_id is None:
            return
        settling = newer.filter(pk__lte=settled_id)
        finished = self._finished_counts(settling)
        still_open = set(
            settling.filter(status__in=RunStatus.active()).values_list("pk", flat=True).order_by()
        )
        # Only once both reads succeeded: a range folded twice would be counted twice.
        self._settled.update(finished)
        self._open_ids |= still_open
        self._settled_id = settled_id

    @staticmethod
    def _finished_counts(runs: QuerySet[SyncRun]) -> Counter[tuple[str, str]]:
        rows = (
            runs.filter(status__in=RunStatus.terminal())
            .values("table_name", "status")
            .annotate(count=Count("id"))
        )
        return Counter({(row["table_name"], row["status"]): row["count"] for row in rows.order_by()})


class SyncCollector:
    """Derives the fdm_* metrics from table configurations, run history and the task queue's tables."""

    def __init__(self) -> None:
        self.run_counts = FinishedRunCounts()

    def describe(self) -> Iterator[Metric]:
        # Names only: the registry asks for them at registration, before the database may be reachable.
        for spec in SPECS:
            yield spec.family()

    def collect(self) -> Iterator[Metric]:
        try:
            snapshot = self.read(now=timezone.now())
        except DatabaseError:
            logger.exception("metrics: could not read fdm's database")
            up = COLLECTOR_UP.family()
            up.add_metric([], 0)
            yield up
            return
        yield from families(snapshot)

    def read(self, *, now: datetime) -> Snapshot:
        """Read a snapshot; a failing read rolls back and leaves no broken transaction behind."""
        outermost = not connection.in_atomic_block
        with transaction.atomic():
            if outermost:
                # One snapshot for every read, so that runs finishing meanwhile are counted exactly once.
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            snapshot = read_snapshot(now=now)
            snapshot.finished = self.run_counts.read(now=now)
            return snapshot


def read_snapshot(*, now: datetime) -> Snapshot:
    """Read what a scrape reports, except the run counts (`FinishedRunCounts`), in six small queries.

    1. Tables, each with the ids of its latest successful run and its latest outcome
       (`selectors.tables_with_latest_runs`).
    2. Those runs, by primary key.
    3. Queued and running runs, grouped by table and status (the status index; there are few).
    4. The task queue: the latest finished task (its result table is capped by Q_CLUSTER save_limit), and the
       most overdue schedule.
    5. Each table's latest finished reconciliation.
    """
    tables = TableConfig.objects.only(
        "id", "name", "enabled", "schedule", "max_staleness_minutes", "created_at"
    )
    annotated: list[Any] = list(
        selectors.tables_with_latest_runs(tables, last_run_among=RunStatus.outcomes()).order_by("name")
    )
    latest_runs = {t.pk: (t.last_success_id, t.last_run_id) for t in annotated}
    run_ids = {run_id for pair in latest_runs.values() for run_id in pair if run_id is not None}
    runs = selectors.runs_by_id(ids=run_ids, only=RUN_FIELDS)

    snapshot = Snapshot(now=now, tables=annotated, runs=runs, latest_runs=latest_runs)
    active = (
        SyncRun.objects.filter(status__in=RunStatus.active())
        .values("table_id", "status")
        .annotate(
            count=Count("id"),
            oldest_due=Min(Coalesce("not_before", "queued_at")),
            earliest_start=Min("started_at"),
        )
        .order_by()
    )
    for row in active:
        snapshot.active.setdefault(row["table_id"], {})[row["status"]] = row["count"]
        if row["status"] == RunStatus.QUEUED:
            snapshot.oldest_due = _earliest(snapshot.oldest_due, row["oldest_due"])
        else:
            snapshot.earliest_start = _earliest(snapshot.earliest_start, row["earliest_start"])

    snapshot.last_task = selectors.workers_last_task_at()
    snapshot.oldest_schedule_due = selectors.schedule_most_overdue(now=now)
    snapshot.reconciliations = reconciliation_latest_by_table()
    return snapshot


def families(snapshot: Snapshot) -> Iterator[Metric]:
    """The metric families for a snapshot, every sample labelled only by table names and fixed values."""
    now = snapshot.now
    out = {spec.name: spec.family() for spec in SPECS}

    def add(spec: MetricSpec, labels: list[str], value: float) -> None:
        out[spec.name].add_metric(labels, value)

    for table in snapshot.tables:
        name = table.name
        add(TABLE_ENABLED, [name], 1 if table.enabled else 0)
        add(TABLE_SCHEDULED, [name], 1 if shape_for(table) is not None else 0)
        if table.max_staleness_minutes is not None:
            add(TABLE_MAX_STALENESS, [name], table.max_staleness_minutes * 60)
        add(TABLE_RUNS_ACTIVE, [name], sum(snapshot.active.get(table.pk, {}).values()))

        last_success_id, last_outcome_id = snapshot.latest_runs.get(table.pk, (None, None))
        success = snapshot.runs.get(last_success_id) if last_success_id is not None else None
        last_success_finished = success.finished_at if success is not None else None
        add(TABLE_FRESHNESS, [name], selectors.Freshness.of(table, last_success_finished, now).seconds)
        if success is not None and last_success_finished is not None:
            add(TABLE_LAST_SUCCESS, [name], last_success_finished.timestamp())
            _add_success_details(add, name, success)
            add(
                RECONCILIATION_RUN_CHECK_MISMATCH,
                [name],
                1 if success.reconciliation_status == RunCheckStatus.MISMATCH else 0,
            )
        if (reconciliation := snapshot.reconciliations.get(name)) is not None:
            _add_reconciliation(add, name, reconciliation)

        outcome = snapshot.runs.get(last_outcome_id) if last_outcome_id is not None else None
        if outcome is not None:
            for status in RunStatus.outcomes():
                add(TABLE_LAST_RUN_STATUS, [name, status.value], 1 if outcome.status == status else 0)
            if outcome.finished_at is not None:
                add(TABLE_LAST_RUN, [name], outcome.finished_at.timestamp())

    # Every outcome of every table appears, zeros included, so that increase() sees the first failure.
    table_names = sorted({t.name for t in snapshot.tables} | set(snapshot.finished))
    for name in table_names:
        counts = snapshot.finished.get(name, {})
        for status in RunStatus.in_order(RunStatus.terminal()):
            add(RUNS, [name, status.value], counts.get(status, 0))

    in_progress: dict[str, int] = defaultdict(int)
    for per_status in snapshot.active.values():
        for active_status, count in per_status.items():
            in_progress[active_status] += count
    for status in RunStatus.in_order(RunStatus.active()):
        add(RUNS_IN_PROGRESS, [status.value], in_progress[status])
    oldest_due = snapshot.oldest_due
    add(RUN_OLDEST_QUEUED_AGE, [], max(_seconds(now, oldest_due), 0.0) if oldest_due else 0.0)
    earliest_start = snapshot.earliest_start
    add(RUN_LONGEST_RUNNING, [], max(_seconds(now, earliest_start), 0.0) if earliest_start else 0.0)
    if snapshot.last_task is not None:
        add(WORKER_LAST_TASK, [], snapshot.last_task.timestamp())
    schedule_due = snapshot.oldest_schedule_due
    add(SCHEDULE_OVERDUE, [], max(_seconds(now, schedule_due), 0.0) if schedule_due else 0.0)
    add(COLLECTOR_UP, [], 1)
    yield from out.values()


def _add_success_details(
    add: Callable[[MetricSpec, list[str], float], None], name: str, run: SyncRun
) -> None:
    for kind in ROW_KINDS:
        add(TABLE_LAST_SUCCESS_ROWS, [name, kind], getattr(run, f"rows_{kind}"))
    for kind in BYTE_KINDS:
        add(TABLE_LAST_SUCCESS_BYTES, [name, kind], getattr(run, f"bytes_{kind}"))
    for stage in STAGES:
        seconds = getattr(run, f"{stage}_seconds")
        if seconds is not None:
            add(TABLE_LAST_SUCCESS_DURATION, [name, stage], seconds)
    if run.started_at is not None and run.finished_at is not None:
        add(TABLE_LAST_SUCCESS_DURATION, [name, "total"], _seconds(run.finished_at, run.started_at))


def _add_reconciliation(
    add: Callable[[MetricSpec, list[str], float], None], name: str, reconciliation: Reconciliation
) -> None:
    for status in (ReconciliationStatus.EQUAL, ReconciliationStatus.DIFFERENT, ReconciliationStatus.FAILED):
        add(RECONCILIATION_LAST_STATUS, [name, status], 1 if reconciliation.status == status else 0)
    add(RECONCILIATION_LAST_DIFFERENCES, [name], reconciliation.differences_found)
    duration = reconciliation.duration
    if duration is not None:
        add(
            RECONCILIATION_LAST_DURATION,
            [name, "true" if reconciliation.deep else "false"],
            duration.total_seconds(),
        )
    if reconciliation.finished_at is not None:
        add(RECONCILIATION_LAST, [name], reconciliation.finished_at.timestamp())


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def _earliest(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if candidate is None:
        return current
    return candidate if current is None or candidate < current else current


_registered: SyncCollector | None = None
_register_lock = threading.Lock()


def register() -> SyncCollector:
    """Add the collector to the default registry, once per process; later calls return the same one."""
    global _registered
    with _register_lock:
        if _registered is None:
            collector = SyncCollector()
            REGISTRY.register(collector)
            _registered = collector
        return _registered
