"""Table configuration: which Snowflake tables are replicated into PostgreSQL, and how."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models
from simple_history.models import HistoricalRecords

from syncconfig import schema as table_schema
from syncconfig.choices import (
    CompressionMode,
    DeleteMode,
    DriftPolicy,
    EncryptionMode,
    ScheduleKind,
    SyncMode,
)


def _empty_list() -> list[str]:
    return []


def _empty_dict() -> dict[str, str]:
    return {}


class TableConfig(models.Model):
    """One Snowflake table replicated into one PostgreSQL table.

    Mirrors one entry of `config/tables.yaml` (keys and defaults in docs/table-configuration.md); the YAML import, the
    admin form and the API all validate through `syncconfig.schema`, which `clean()` runs. Every change is kept in
    `history` (who, when, what, and for imports the file as the change reason).

    Column names are as configured, following Snowflake's rules: a plain name (`updated_at`) matches its column
    regardless of case; any other name matches exactly. Encryption mode `all` (YAML `encryption: true`)
    encrypts every column except the primary key and the incremental column, which stay in clear text so that
    rows can be matched and the next run can filter on the watermark. Compression mode `auto` (YAML
    `compression: true`) compresses VARIANT/OBJECT/ARRAY, BINARY and unbounded text columns.

    Saves and deletes go through `save()` / `delete()` one instance at a time: the engine keeps each table's
    schedule in step from the post_save / post_delete signals, which bulk operations skip.
    """

    name = models.CharField(
        max_length=table_schema.MAX_TABLE_NAME_LENGTH,
        unique=True,
        help_text="Short name used in commands and URLs: lower-case letters, digits and _.",
    )
    snowflake_database = models.CharField(max_length=255)
    snowflake_schema = models.CharField(max_length=255)
    snowflake_table = models.CharField(max_length=255)
    postgres_schema = models.CharField(max_length=63, verbose_name="PostgreSQL schema")
    postgres_table = models.CharField(max_length=63, verbose_name="PostgreSQL table")

    sync_mode = models.CharField(max_length=16, choices=SyncMode.choices, default=SyncMode.FULL)
    incremental_column = models.CharField(
        max_length=255,
        blank=True,
        help_text="Watermark column for incremental mode; each run reads rows at or after the last value.",
    )
    schedule = models.CharField(
        max_length=100,
        default=table_schema.DEFAULT_SCHEDULE,
        help_text="hourly, daily, manual, or a 5-field cron expression (minute hour day month weekday), UTC.",
    )
    primary_key = models.JSONField(
        default=_empty_list,
        blank=True,
        help_text="Source column names. Empty: the source table's declared primary key, if it has one.",
    )
    include_columns = models.JSONField(
        default=_empty_list, blank=True, help_text="Copy only these source columns. Empty: all columns."
    )
    exclude_columns = models.JSONField(
        default=_empty_list, blank=True, help_text="Copy every source column except these."
    )

    encryption_mode = models.CharField(
        max_length=16, choices=EncryptionMode.choices, default=EncryptionMode.OFF
    )
    encrypted_columns = models.JSONField(
        default=_empty_list, blank=True, help_text="Columns to encrypt when the mode is 'Listed columns'."
    )
    searchable_columns = models.JSONField(
        default=_empty_list,
        blank=True,
        help_text="Encrypted columns that can still be looked up by exact value.",
    )
    compression_mode = models.CharField(
        max_length=16, choices=CompressionMode.choices, default=CompressionMode.OFF
    )
    compressed_columns = models.JSONField(
        default=_empty_list, blank=True, help_text="Columns to compress when the mode is 'Listed columns'."
    )

    column_names = models.JSONField(
        default=_empty_dict,
        blank=True,
        help_text='Target names for source columns, e.g. {"TXN_ID": "transaction_id"}. '
        "Others: lower-case of the Snowflake name.",
    )
    clear_columns = models.JSONField(
        default=_empty_dict,
        blank=True,
        help_text="Source columns that another table encrypts and this one may keep in clear text, each with "
        'the reason, e.g. {"IBAN": "bank file export, approved by the controller"}. Needs the admin role.',
    )
    schema_drift = models.CharField(
        max_length=16,
        choices=DriftPolicy.choices,
        default=DriftPolicy.EVOLVE,
        help_text="What a run does when the source's columns change.",
    )
    batch_size = models.PositiveIntegerField(
        default=table_schema.DEFAULT_BATCH_SIZE, help_text="Rows per Arrow batch read from Snowflake."
    )
    max_staleness_minutes = models.PositiveIntegerField(
        null=True,
        blank=True,
        verbose_name="freshness SLA (minutes)",
        help_text="Flag the table as late when its last successful run is older than this (YAML freshness_sla, "
        'e.g. "2h"). Empty: no limit.',
    )
    deletes_mode = models.CharField(
        max_length=8,
        choices=DeleteMode.choices,
        default=DeleteMode.OFF,
        verbose_name="deletes",
        help_text="Incremental runs: what to do with target rows whose key no longer exists in the source.",
    )
    deletes_max_ratio = models.FloatField(
        default=table_schema.DEFAULT_DELETE_MAX_RATIO,
        verbose_name="delete guard (share of rows)",
        help_text="A run that would delete more than this share of the table fails and deletes nothing, "
        "unless an operator allows it for that run.",
    )
    keep_history = models.BooleanField(
        default=False,
        verbose_name="history",
        help_text="Keep every version of each row (_fdm_valid_from, _fdm_valid_to, _fdm_is_current). "
        "Needs a primary key.",
    )
    lineage = models.BooleanField(
        default=False, help_text="Add _fdm_synced_at and _fdm_run_id to every row written."
    )
    reconcile_schedule = models.CharField(
        max_length=table_schema.MAX_SCHEDULE_LENGTH,
        blank=True,
        help_text="When to check the whole table against its source (hourly, daily or a cron expression, UTC). "
        "Empty: on request only.",
    )
    parallel_slices = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        verbose_name="parallel slices",
        help_text=f"Split a full load into this many key ranges ({table_schema.MIN_SLICES}-"
        f"{table_schema.MAX_SLICES}), staged by any worker and published together. Empty: one process.",
    )
    enabled = models.BooleanField(
        default=True, help_text="Disabled tables keep their data but are not synced."
    )
    notes = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()
    # Set before a save or delete; simple_history records them with the change it writes.
    _change_reason: str
    _history_user: Any

    class Meta:
        ordering = ["name"]
        verbose_name = "table"
        constraints = [
            models.UniqueConstraint(
                fields=["postgres_schema", "postgres_table"],
                name="syncconfig_tableconfig_unique_target",
                # Deferred so that one import can swap the targets of two tables.
                deferrable=models.Deferrable.DEFERRED,
                violation_error_message="Another table already writes to this PostgreSQL schema and table.",
            ),
        ]
        permissions = [
            ("change_protection", "Can weaken the protection of sensitive columns"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def schedule_kind(self) -> ScheduleKind:
        return ScheduleKind.of(self.schedule)

    @property
    def source_display(self) -> str:
        return f"{self.snowflake_database}.{self.snowflake_schema}.{self.snowflake_table}"

    @property
    def target_display(self) -> str:
        return f"{self.postgres_schema}.{self.postgres_table}"

    def to_table_dict(self) -> dict[str, Any]:
        """This table as one entry of `config/tables.yaml` (canonical: fixed key order, defaults left out)."""
        return table_schema.table_dict_from_model(self)

    def apply_table(self, table: table_schema.TableDocument) -> None:
        """Set every field from a validated table (does not save)."""
        for field, value in table_schema.model_fields_from_table(table).items():
            setattr(self, field, value)

    def _mode_problems(self) -> dict[str, str]:
        """Column lists that the chosen mode would ignore: the YAML form cannot express them, so refuse them."""
        problems = {}
        if self.encryption_mode != EncryptionMode.COLUMNS and self.encrypted_columns:
            problems["encrypted_columns"] = (
                "List encrypted columns only when the encryption mode is 'columns'."
            )
        if self.encryption_mode == EncryptionMode.OFF and self.searchable_columns:
            problems["searchable_columns"] = "Searchable columns need encryption."
        if self.compression_mode != CompressionMode.COLUMNS and self.compressed_columns:
            problems["compressed_columns"] = (
                "List compressed columns only when the compression mode is 'columns'."
            )
        return problems

    def validation_errors(self) -> list[table_schema.ConfigError]:
        """Problems the shared schema finds with this table as it stands (unsaved edits included)."""
        return table_schema.validate_table(self.to_table_dict()).errors

    def clean(self) -> None:
        """Validate through the shared schema and attach each problem to the field it is about."""
        # "Daily" is daily: the schedules and the export know only the lower-case words.
        self.schedule = table_schema.schedule_keyword(self.schedule) or self.schedule
        if self.reconcile_schedule:
            self.reconcile_schedule = (
                table_schema.schedule_keyword(self.reconcile_schedule) or self.reconcile_schedule
            )
        errors: dict[str, list[str]] = {}
        for field, message in self._mode_problems().items():
            errors.setdefault(field, []).append(message)
        if not errors:
            for error in self.validation_errors():
                field = table_schema.field_for_path(error.field) or NON_FIELD_ERRORS
                # The YAML path tells which list item is meant; it is noise when it is the field itself.
                label = f"{error.field}: " if error.field and error.field != field else ""
                errors.setdefault(field, []).append(f"{label}{error.message}")
        clash = (
            TableConfig.objects.filter(
                postgres_schema=self.postgres_schema, postgres_table=self.postgres_table
            )
            .exclude(pk=self.pk)
            .values_list("name", flat=True)
            .first()
        )
        if clash:
            message = (
                f"{self.postgres_schema}.{self.postgres_table} is already the target of table {clash!r}."
            )
            errors.setdefault("postgres_table", []).append(message)
        if errors:
            raise ValidationError(errors)

    def validate_constraints(self, exclude: Collection[str] | None = None) -> None:
        # clean() reports a taken target on the postgres_table field, naming the table that holds it.
        super().validate_constraints(exclude={*(exclude or ()), "postgres_schema"})
