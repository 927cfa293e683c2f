"""Serializers of the pipeline endpoints: runs as their records say, read-only."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from syncengine.models import RunSlice, SyncRun
from syncengine.selectors import run_slice_counts

_RUN_FIELDS: tuple[str, ...] = (
    "id",
    "table",
    "trigger",
    "status",
    "requested_by",
    "full_refresh",
    "backfill_from",
    "backfill_to",
    "allow_deletes",
    "attempt",
    "retry_of",
    "mode",
    "queued_at",
    "not_before",
    "started_at",
    "finished_at",
    "heartbeat_at",
    "duration_seconds",
    "stage",
    "progress_rows",
    "rows_extracted",
    "rows_loaded",
    "rows_inserted",
    "rows_updated",
    "rows_deleted",
    "bytes_extracted",
    "bytes_loaded",
    "extract_seconds",
    "transform_seconds",
    "load_seconds",
    "publish_seconds",
    "watermark_before",
    "watermark_after",
    "drift",
    "error_message",
    "error_kind",
    "skip_reason",
    "cancel_requested",
    "config_hash",
    "reconciliation_status",
)

WATERMARK_SCHEMA = {
    "type": ["object", "null"],
    "properties": {"type": {"type": "string"}, "value": {}},
    "description": 'e.g. {"type": "timestamp_ntz", "value": "2026-01-31T12:00:00.000000"}',
}


@extend_schema_field(WATERMARK_SCHEMA)
class WatermarkField(serializers.JSONField):
    pass


class RunSerializer(serializers.ModelSerializer):
    """A run: what was asked, where it is, and what it did."""

    table = serializers.CharField(
        source="table_name", help_text="The table's name when the run was requested."
    )
    requested_by = serializers.SerializerMethodField()
    duration_seconds = serializers.SerializerMethodField()
    watermark_before = WatermarkField(read_only=True)
    watermark_after = WatermarkField(read_only=True)
    drift = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = SyncRun
        fields: tuple[str, ...] = _RUN_FIELDS
        read_only_fields: tuple[str, ...] = _RUN_FIELDS

    @extend_schema_field(OpenApiTypes.STR)
    def get_requested_by(self, run: SyncRun) -> str | None:
        return run.requested_by.get_username() if run.requested_by is not None else None

    @extend_schema_field({"type": ["number", "null"]})
    def get_duration_seconds(self, run: SyncRun) -> float | None:
        duration = run.duration
        return duration.total_seconds() if duration is not None else None


class RunSliceSerializer(serializers.ModelSerializer):
    """One key range of a sliced run (`parallel.slices`)."""

    class Meta:
        model = RunSlice
        fields = (
            "number",
            "status",
            "attempt",
            "lower",
            "upper",
            "rows",
            "executor",
            "started_at",
            "finished_at",
            "heartbeat_at",
            "error_message",
        )
        read_only_fields = fields


class RunDetailSerializer(RunSerializer):
    """A run with its structured log, traceback and checks; a sliced run with its slices and their counts by
    status (done, running, queued, failed)."""

    log = serializers.ListField(child=serializers.DictField(), read_only=True)
    checks = serializers.DictField(read_only=True)
    slices = RunSliceSerializer(many=True, read_only=True)
    slice_counts = serializers.SerializerMethodField()

    class Meta(RunSerializer.Meta):
        fields = (*_RUN_FIELDS, "checks", "error_traceback", "log", "slice_counts", "slices")
        read_only_fields = fields

    @extend_schema_field({"type": ["object", "null"], "additionalProperties": {"type": "integer"}})
    def get_slice_counts(self, run: SyncRun) -> dict[str, int] | None:
        return run_slice_counts(run)


class RunCreateSerializer(serializers.Serializer):
    table = serializers.CharField(help_text="The table's name.")
    full_refresh = serializers.BooleanField(
        default=False, help_text="Reload everything, ignoring the watermark."
    )
    allow_deletes = serializers.BooleanField(
        default=False, help_text="Let this run delete more rows than the table's delete guard allows."
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        # `from` is a Python keyword, so the range's fields are added here rather than declared above.
        fields = super().get_fields()
        fields["from"] = serializers.CharField(
            required=False,
            allow_blank=False,
            max_length=100,
            help_text="Backfill: re-extract the rows whose incremental column is at or after this value "
            "(a number, date or ISO 8601 timestamp, as the column's type) and merge them; the watermark never "
            "moves back.",
        )
        fields["to"] = serializers.CharField(
            required=False,
            allow_blank=False,
            max_length=100,
            help_text="With `from`: up to this value, inclusive (default: the newest row).",
        )
        return fields


class RunSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    trigger = serializers.CharField()
    queued_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    error_message = serializers.CharField()


class TableStatusSerializer(serializers.Serializer):
    """Where a table stands: its latest run, latest success, freshness and watermark."""

    table = serializers.CharField()
    enabled = serializers.BooleanField()
    schedule = serializers.CharField()
    next_run_at = serializers.DateTimeField(allow_null=True, help_text="When the schedule fires next.")
    last_run = RunSummarySerializer(allow_null=True)
    last_success = RunSummarySerializer(allow_null=True)
    active_run = RunSummarySerializer(allow_null=True, help_text="A queued or running run, if any.")
    freshness_seconds = serializers.FloatField(
        allow_null=True, help_text="Seconds since the latest success finished; null before the first."
    )
    max_staleness_minutes = serializers.IntegerField(allow_null=True)
    stale = serializers.BooleanField(
        help_text="Past max_staleness_minutes (never for a table without a limit)."
    )
    watermark = WatermarkField(help_text="The watermark after the latest successful run.")
    reconciliation_status = serializers.CharField(
        allow_null=True,
        help_text="The light check of the latest successful run: equal, mismatch (the copy disagrees with the "
        "source's counts or sums: the table is flagged), skipped, or null.",
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return instance
