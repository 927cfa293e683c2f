"""Choice sets for table configuration.

The values are the ones the YAML file and the API use, and they equal the pipeline's enums in
`syncengine.pipeline.spec` (a test keeps the two in step), so a stored value converts without a lookup table.
"""

from __future__ import annotations

from django.db import models


class SyncMode(models.TextChoices):
    """How each run reads the source: everything, or only rows at or after the watermark."""

    FULL = "full", "Full"
    INCREMENTAL = "incremental", "Incremental"


class EncryptionMode(models.TextChoices):
    """Which columns are encrypted at rest.

    `all` (YAML `encryption: true`) encrypts every column except the primary key and the incremental (watermark)
    column, which must stay comparable for upserts and for the next run's `>=` filter.
    """

    OFF = "off", "Off"
    ALL = "all", "All columns except keys and watermark"
    COLUMNS = "columns", "Listed columns"


class CompressionMode(models.TextChoices):
    """Which columns are stored zstd-compressed.

    `auto` (YAML `compression: true`) compresses VARIANT/OBJECT/ARRAY, BINARY and unbounded text columns, the
    ones large enough for compression to pay off.
    """

    OFF = "off", "Off"
    AUTO = "auto", "Large columns (semi-structured, binary, unbounded text)"
    COLUMNS = "columns", "Listed columns"


class DriftPolicy(models.TextChoices):
    """What a run does when the source's columns differ from the target's (see the pipeline's DriftPolicy)."""

    EVOLVE = "evolve", "Evolve: add new columns, keep dropped ones, widen compatible types"
    STRICT = "strict", "Strict: stop the run on any difference"
    IGNORE = "ignore", "Ignore: load only the columns both sides share"


class ScheduleKind(models.TextChoices):
    """The kind of a table's `schedule` value; anything other than the three keywords is a cron expression."""

    HOURLY = "hourly", "Hourly"
    DAILY = "daily", "Daily"
    MANUAL = "manual", "Manual only"
    CRON = "cron", "Cron expression"

    @classmethod
    def of(cls, schedule: str) -> ScheduleKind:
        """The kind of a stored schedule value."""
        if schedule in (cls.HOURLY, cls.DAILY, cls.MANUAL):
            return cls(schedule)
        return cls.CRON

    @classmethod
    def keywords(cls) -> tuple[str, ...]:
        """The schedule values that are not cron expressions."""
        return (cls.HOURLY.value, cls.DAILY.value, cls.MANUAL.value)
