"""Reads of run history."""

from __future__ import annotations

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
