"""Admin endpoints of the engine: /api/v1/admin/workers/ (worker and queue status) and /api/v1/admin/runs/purge/."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Min
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_q.models import OrmQ, Schedule, Task
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from fdm.api.permissions import IsAdmin
from fdm.api.views import ApiView
from syncengine import selectors, services
from syncengine.choices import RunStatus
from syncengine.models import SyncRun

TAGS = ["admin"]
MAX_PURGE_DAYS = 100 * 366


def _iso(value: Any) -> str | None:
    return serializers.DateTimeField().to_representation(value) if value is not None else None


def worker_status() -> dict[str, Any]:
    """What the task queue and its workers are doing, read from the database (the only place every process
    shares): the latest finished task, tasks waiting in the ORM broker, queued and running runs, schedules."""
    now = timezone.now()
    silence = selectors.workers_silence_limit()
    last_task = selectors.workers_last_task_at()
    runs = {
        row["status"]: row
        for row in SyncRun.objects.filter(status__in=RunStatus.active())
        .values("status")
        .annotate(
            count=Count("id"), oldest=Min(Coalesce("not_before", "queued_at")), started=Min("started_at")
        )
        .order_by()
    }
    queued, running = runs.get(RunStatus.QUEUED, {}), runs.get(RunStatus.RUNNING, {})
    overdue = selectors.schedule_most_overdue(now=now)
    return {
        "workers_alive": last_task is not None and now - last_task <= silence,
        "last_task_finished_at": _iso(last_task),
        "broker": "redis" if settings.REDIS_URL else "orm",
        "broker_queued_tasks": OrmQ.objects.count() if not settings.REDIS_URL else None,
        "failed_tasks_last_day": Task.objects.filter(
            success=False, stopped__gte=now - timedelta(days=1)
        ).count(),
        "runs_queued": queued.get("count", 0),
        "runs_running": running.get("count", 0),
        "oldest_queued_run_due_at": _iso(queued.get("oldest")),
        "longest_running_since": _iso(running.get("started")),
        "schedules": Schedule.objects.count(),
        "most_overdue_schedule_due_at": _iso(overdue),
        "workers_configured": settings.Q_CLUSTER.get("workers"),
    }


_WORKERS = inline_serializer(
    "WorkerStatus",
    {
        "workers_alive": serializers.BooleanField(help_text="A task finished within 3 reaper intervals."),
        "last_task_finished_at": serializers.DateTimeField(allow_null=True),
        "broker": serializers.ChoiceField(choices=["orm", "redis"]),
        "broker_queued_tasks": serializers.IntegerField(allow_null=True, help_text="ORM broker only."),
        "failed_tasks_last_day": serializers.IntegerField(),
        "runs_queued": serializers.IntegerField(),
        "runs_running": serializers.IntegerField(),
        "oldest_queued_run_due_at": serializers.DateTimeField(allow_null=True),
        "longest_running_since": serializers.DateTimeField(allow_null=True),
        "schedules": serializers.IntegerField(),
        "most_overdue_schedule_due_at": serializers.DateTimeField(allow_null=True),
        "workers_configured": serializers.IntegerField(allow_null=True, help_text="FDM_WORKERS per cluster."),
    },
)


class WorkerStatusView(ApiView):
    """Worker and queue status."""

    permission_classes = [IsAdmin]

    @extend_schema(tags=TAGS, summary="Worker and queue status", responses={200: _WORKERS})
    def get(self, request: Request) -> Response:
        return Response(worker_status())


class PurgeSerializer(serializers.Serializer):
    older_than_days = serializers.IntegerField(
        min_value=1,
        max_value=MAX_PURGE_DAYS,
        help_text="Delete finished runs queued more than this many days ago.",
    )
    dry_run = serializers.BooleanField(default=False, help_text="Only count them.")


_PURGED = inline_serializer(
    "PurgeResult",
    {
        "dry_run": serializers.BooleanField(),
        "older_than": serializers.DateTimeField(),
        "runs": serializers.IntegerField(help_text="Runs deleted (or, in a dry run, that would be)."),
    },
)


class RunPurgeView(ApiView):
    """Delete old run history; queued and running runs are always kept."""

    permission_classes = [IsAdmin]

    @extend_schema(tags=TAGS, summary="Purge old runs", request=PurgeSerializer, responses={200: _PURGED})
    def post(self, request: Request) -> Response:
        payload = PurgeSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        older_than = timezone.now() - timedelta(days=payload.validated_data["older_than_days"])
        dry_run = payload.validated_data["dry_run"]
        count = services.runs_purge(older_than=older_than, dry_run=dry_run)
        return Response({"dry_run": dry_run, "older_than": _iso(older_than), "runs": count})
