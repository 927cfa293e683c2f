"""Reads of run history."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import QuerySet

from syncconfig.models import TableConfig
from syncengine.choices import RunStatus
from syncengine.models import SyncRun


def runs_for_table(*, table: TableConfig, limit: int = 10) -> QuerySet[SyncRun]:
    """The table's latest runs, newest first."""
    return SyncRun.objects.filter(table=table).order_by("-queued_at", "-id")[:limit]


def run_active_for_table(*, table_id: int) -> SyncRun | None:
    """A queued or running run of the table, if there is one (the oldest)."""
    return (
        SyncRun.objects.filter(table_id=table_id, status__in=RunStatus.active())
        .order_by("queued_at", "id")
        .first()
    )


def run_latest_succeeded(*, table: TableConfig) -> SyncRun | None:
    return SyncRun.objects.filter(table=table, status=RunStatus.SUCCEEDED).order_by("-finished_at").first()


def tables_with_run_ids(*, tables: QuerySet[TableConfig] | None = None) -> QuerySet[TableConfig]:
    """Tables annotated with the ids of their latest run (`last_run_id`), latest successful run
    (`last_success_id`) and oldest queued or running run (`active_run_id`): correlated subqueries on the
    (table, -queued_at) index, one query for any number of tables."""
    from django.db.models import OuterRef, Subquery

    runs = SyncRun.objects.filter(table=OuterRef("pk"))
    newest = runs.order_by("-queued_at", "-id").values("pk")[:1]
    succeeded = runs.filter(status=RunStatus.SUCCEEDED).order_by("-queued_at", "-id").values("pk")[:1]
    active = runs.filter(status__in=RunStatus.active()).order_by("queued_at", "id").values("pk")[:1]
    base = tables if tables is not None else TableConfig.objects.all()
    return base.annotate(
        last_run_id=Subquery(newest), last_success_id=Subquery(succeeded), active_run_id=Subquery(active)
    )


def runs_by_id(*, ids: set[int]) -> dict[int, SyncRun]:
    return {run.pk: run for run in SyncRun.objects.filter(pk__in=ids).order_by()}


def tables_past_freshness(*, now: datetime) -> list[tuple[TableConfig, datetime]]:
    """Enabled tables with a freshness limit whose latest successful run finished longer ago than the limit
    allows (or, never having succeeded, that were configured longer ago), each with that moment."""
    from django.db.models import OuterRef, Subquery

    last_success = (
        SyncRun.objects.filter(table=OuterRef("pk"), status=RunStatus.SUCCEEDED)
        .order_by("-queued_at", "-id")
        .values("finished_at")[:1]
    )
    stale: list[tuple[TableConfig, datetime]] = []
    tables = TableConfig.objects.filter(enabled=True, max_staleness_minutes__isnull=False).annotate(
        last_success_at=Subquery(last_success)
    )
    for table in tables.order_by("name"):
        since = table.last_success_at or table.created_at
        assert table.max_staleness_minutes is not None
        if now - since > timedelta(minutes=table.max_staleness_minutes):
            stale.append((table, since))
    return stale
