"""Reads of run history: runs, each table's latest runs, and how fresh its data is; and of the task queue:
whether workers are alive, the most overdue schedule."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db.models import (
    Case,
    Count,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone
from django_q.models import Schedule, Task

from syncconfig.models import TableConfig
from syncengine.choices import RunStatus, TableState
from syncengine.models import SyncRun

MAX_RUN_ID = 2**63 - 1  # a bigint primary key: a larger id cannot exist (and PostgreSQL would refuse it)


def run_get(*, run_id: int) -> SyncRun | None:
    """The run with this id (and who asked for it), or None."""
    if run_id > MAX_RUN_ID:
        return None
    return SyncRun.objects.select_related("requested_by").filter(pk=run_id).first()


def run_list(
    *,
    tables: Collection[str] = (),
    statuses: Collection[str] = (),
    triggers: Collection[str] = (),
    queued_after: datetime | None = None,
    queued_before: datetime | None = None,
) -> QuerySet[SyncRun]:
    """Runs, newest first, narrowed by table name, status, trigger and when they were queued (an empty
    filter narrows nothing; `queued_after` is inclusive, `queued_before` is not)."""
    runs = SyncRun.objects.select_related("requested_by").order_by("-queued_at", "-id")
    if tables:
        runs = runs.filter(table_name__in=tables)
    if statuses:
        runs = runs.filter(status__in=statuses)
    if triggers:
        runs = runs.filter(trigger__in=triggers)
    if queued_after:
        runs = runs.filter(queued_at__gte=queued_after)
    if queued_before:
        runs = runs.filter(queued_at__lt=queued_before)
    return runs


def run_active_for_table(*, table_id: int) -> SyncRun | None:
    """A queued or running run of the table, if there is one (the oldest)."""
    return (
        SyncRun.objects.filter(table_id=table_id, status__in=RunStatus.active())
        .order_by("queued_at", "id")
        .first()
    )


def runs_by_id(*, ids: Collection[int], only: Sequence[str] = ()) -> dict[int, SyncRun]:
    """The runs with these ids, by id; `only` limits the columns read."""
    runs = SyncRun.objects.filter(pk__in=ids).order_by()
    return {run.pk: run for run in (runs.only(*only) if only else runs)}


def tables_with_latest_runs(
    tables: QuerySet[TableConfig] | None = None,
    *,
    last_run_among: Collection[str] | None = None,
    active_run: bool = False,
    details: bool = False,
) -> QuerySet[TableConfig]:
    """Tables (all when None) annotated with their latest runs, one query for any number of tables.

    - `last_run_id`: the latest run whose status is in `last_run_among` (any run when None);
    - `last_success_id`: the latest successful run;
    - with `active_run`, `active_run_id`: the oldest queued or running run;
    - with `details`, `last_run_status` and `last_success_finished_at`, for pages that show them without
      reading the runs.

    "Latest" is the latest queued. Each is a correlated subquery that walks the (table, -queued_at) index from
    the newest run and stops at the first match; the optional ones cost a walk each, hence opt-in (the oldest
    active run is searched from the oldest run, the whole history of a table that has none).
    """
    runs = SyncRun.objects.filter(table=OuterRef("pk")).order_by("-queued_at", "-id")
    latest = runs if last_run_among is None else runs.filter(status__in=last_run_among)
    succeeded = runs.filter(status=RunStatus.SUCCEEDED)
    annotations: dict[str, Subquery] = {
        "last_run_id": Subquery(latest.values("pk")[:1]),
        "last_success_id": Subquery(succeeded.values("pk")[:1]),
    }
    if active_run:
        active = runs.filter(status__in=RunStatus.active()).order_by("queued_at", "id")
        annotations["active_run_id"] = Subquery(active.values("pk")[:1])
    if details:
        annotations["last_run_status"] = Subquery(latest.values("status")[:1])
        annotations["last_success_finished_at"] = Subquery(succeeded.values("finished_at")[:1])
    base = tables if tables is not None else TableConfig.objects.all()
    return base.annotate(**annotations)


def tables_with_state(tables: QuerySet[TableConfig] | None = None, *, now: datetime) -> QuerySet[TableConfig]:
    """Tables annotated, in SQL, with `state` (a TableState) and `state_rank` (its place in TableState's order,
    for sorting: what needs a person first), so that a list can filter and sort by state.

    The latest run counts among RunStatus.outcomes() (a skipped run never hides the failure before it); the
    annotations of `tables_with_latest_runs` (with `active_run` and `details`) come along. The one definition
    of a table's state: TableStatus.state reads this annotation.
    """
    annotated = tables_with_latest_runs(
        tables, last_run_among=RunStatus.outcomes(), active_run=True, details=True
    )
    limit = ExpressionWrapper(
        F("max_staleness_minutes") * Value(timedelta(minutes=1)), output_field=DurationField()
    )
    deadline = ExpressionWrapper(Value(now) - limit, output_field=DateTimeField())
    annotated = annotated.alias(
        fresh_since=Coalesce("last_success_finished_at", "created_at"), stale_before=deadline
    )
    rules = [
        (TableState.DISABLED, Q(enabled=False)),
        (TableState.RUNNING, Q(active_run_id__isnull=False)),
        (TableState.FAILING, Q(last_run_status=RunStatus.FAILED)),
        (TableState.LATE, Q(max_staleness_minutes__isnull=False, fresh_since__lt=F("stale_before"))),
        (TableState.NEVER, Q(last_success_id__isnull=True)),
    ]
    rank = {state: index for index, state in enumerate(TableState)}
    return annotated.annotate(
        state=Case(
            *(When(rule, then=Value(state.value)) for state, rule in rules),
            default=Value(TableState.HEALTHY.value),
        ),
        state_rank=Case(
            *(When(rule, then=Value(rank[state])) for state, rule in rules),
            default=Value(rank[TableState.HEALTHY]),
            output_field=IntegerField(),
        ),
    )


@dataclass(frozen=True)
class Freshness:
    """How old a table's data is: since its latest successful run finished or, before its first success,
    since it was configured; and whether that is past its `max_staleness_minutes` (an enabled table only)."""

    since: datetime
    seconds: float
    ever_succeeded: bool
    past_limit: bool

    @classmethod
    def of(cls, table: TableConfig, last_success_finished: datetime | None, now: datetime) -> Freshness:
        since = last_success_finished or table.created_at
        age = now - since
        limit = table.max_staleness_minutes
        return cls(
            since=since,
            seconds=age.total_seconds(),
            ever_succeeded=last_success_finished is not None,
            past_limit=bool(table.enabled and limit is not None and age > timedelta(minutes=limit)),
        )


@dataclass(frozen=True)
class TableStatus:
    """Where a table stands: its latest run, latest success, active run and freshness."""

    table: TableConfig
    last_run: SyncRun | None
    last_success: SyncRun | None
    active_run: SyncRun | None
    freshness: Freshness

    @property
    def state(self) -> TableState | None:
        """The table at a glance, when read through `tables_with_state` (`table_statuses(with_state=True)`)."""
        state = getattr(self.table, "state", None)
        return TableState(state) if state is not None else None


def table_statuses(
    *,
    tables: QuerySet[TableConfig],
    now: datetime,
    with_state: bool = False,
) -> list[TableStatus]:
    """Each table's status, in two queries whatever the number of tables: the tables with their latest runs'
    ids, then those runs. With `with_state`, each table's state too (`tables_with_state`: the last run is then
    the latest outcome, so that a skipped run never hides the failure before it)."""
    annotated: list[Any] = list(
        tables_with_state(tables, now=now) if with_state else tables_with_latest_runs(tables, active_run=True)
    )
    ids = {i for t in annotated for i in (t.last_run_id, t.last_success_id, t.active_run_id) if i is not None}
    runs = runs_by_id(ids=ids)
    statuses = []
    for table in annotated:
        success = runs.get(table.last_success_id)
        statuses.append(
            TableStatus(
                table=table,
                last_run=runs.get(table.last_run_id),
                last_success=success,
                active_run=runs.get(table.active_run_id),
                freshness=Freshness.of(table, success.finished_at if success is not None else None, now),
            )
        )
    return statuses


@dataclass(frozen=True)
class DayOfRuns:
    """How many runs finished on one day, by outcome; the rows the successful ones loaded, and the longest of
    them in seconds (0 without one)."""

    day: date
    succeeded: int
    failed: int
    rows: int = 0
    longest_seconds: float = 0.0


def runs_per_day(*, days: int, now: datetime) -> list[DayOfRuns]:
    """Runs that succeeded or failed on each of the last `days` days (today included, oldest first, days
    without runs as zeros), in one query. Days are in the current time zone."""
    today = timezone.localdate(now)
    first = today - timedelta(days=days - 1)
    start = timezone.make_aware(datetime.combine(first, time.min))
    rows = (
        SyncRun.objects.filter(finished_at__gte=start, status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED])
        .annotate(day=TruncDate("finished_at"))
        .values("day")
        .annotate(
            succeeded=Count("pk", filter=Q(status=RunStatus.SUCCEEDED)),
            failed=Count("pk", filter=Q(status=RunStatus.FAILED)),
            rows=Sum("rows_loaded", filter=Q(status=RunStatus.SUCCEEDED)),
            longest=Max(F("finished_at") - F("started_at"), filter=Q(status=RunStatus.SUCCEEDED)),
        )
        .order_by()
    )
    by_day = {row["day"]: row for row in rows}
    result = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = by_day.get(day, {})
        longest = row.get("longest")
        result.append(
            DayOfRuns(
                day=day,
                succeeded=row.get("succeeded", 0),
                failed=row.get("failed", 0),
                rows=row.get("rows") or 0,
                longest_seconds=longest.total_seconds() if longest else 0.0,
            )
        )
    return result


@dataclass(frozen=True)
class Queue:
    """The work waiting for workers: queued runs (the oldest's age), and running ones."""

    waiting: int
    running: int
    oldest_waiting_since: datetime | None


def run_queue() -> Queue:
    """The queue of runs, in one query."""
    totals = SyncRun.objects.filter(status__in=RunStatus.active()).aggregate(
        waiting=Count("pk", filter=Q(status=RunStatus.QUEUED)),
        running=Count("pk", filter=Q(status=RunStatus.RUNNING)),
        oldest=Min("queued_at", filter=Q(status=RunStatus.QUEUED)),
    )
    return Queue(waiting=totals["waiting"], running=totals["running"], oldest_waiting_since=totals["oldest"])


def run_slice_counts(run: SyncRun) -> dict[str, int] | None:
    """A sliced run's slices by status (every status present, zeros included); None for a run not sliced."""
    from syncengine.choices import SliceStatus

    if run.slicing is None:
        return None
    counts = dict(run.slices.values_list("status").annotate(n=Count("id")))
    return {status.value: counts.get(status.value, 0) for status in SliceStatus}


def workers_last_task_at() -> datetime | None:
    """When a worker last finished a task (any task: the stale-run reaper runs as one every
    FDM_REAPER_INTERVAL_MINUTES, so a live cluster always finishes one)."""
    return Task.objects.aggregate(last=Max("stopped"))["last"]


def workers_silence_limit() -> timedelta:
    """How long the workers may finish no task before they count as gone: three reaper intervals."""
    return timedelta(minutes=settings.FDM_REAPER_INTERVAL_MINUTES * 3)


def schedule_most_overdue(*, now: datetime) -> datetime | None:
    """When the schedule that should have run longest ago was due (None when none is overdue)."""
    return Schedule.objects.exclude(repeats=0).filter(next_run__lte=now).aggregate(due=Min("next_run"))["due"]
