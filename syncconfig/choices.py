"""Choice sets for table configuration.

The values are the ones the YAML file and the API use. Those the pipeline also knows take their values from its
enums in `syncengine.pipeline.spec` (the Django-free core), so each value is written once and a stored value
converts without a lookup table; here they only gain labels. `mirrors` refuses to load a choice set whose
members differ from its enum's, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.db import models

from syncengine.pipeline import spec as pipeline

Choices = TypeVar("Choices", bound=type[models.TextChoices])


def mirrors(enum: type[StrEnum]) -> Callable[[Choices], Choices]:
    """Check, as the class is made, that the choices have exactly `enum`'s values, in its order."""

    def check(choices: Choices) -> Choices:
        ours, theirs = [member.value for member in choices], [member.value for member in enum]
        if ours != theirs:
            raise ImproperlyConfigured(
                f"{choices.__qualname__} has {ours}, the pipeline's {enum.__name__} {theirs}"
            )
        return choices

    return check


@mirrors(pipeline.SyncMode)
class SyncMode(models.TextChoices):
    """How each run reads the source: everything, or only rows at or after the watermark."""

    FULL = pipeline.SyncMode.FULL.value, "Full"
    INCREMENTAL = pipeline.SyncMode.INCREMENTAL.value, "Incremental"


@mirrors(pipeline.EncryptionMode)
class EncryptionMode(models.TextChoices):
    """Which columns are encrypted at rest.

    `all` (YAML `encryption: true`) encrypts every column except the primary key and the incremental (watermark)
    column, which must stay comparable for upserts and for the next run's `>=` filter.
    """

    OFF = pipeline.EncryptionMode.OFF.value, "Off"
    ALL = pipeline.EncryptionMode.ALL.value, "All columns except keys and watermark"
    COLUMNS = pipeline.EncryptionMode.COLUMNS.value, "Listed columns"


@mirrors(pipeline.CompressionMode)
class CompressionMode(models.TextChoices):
    """Which columns are stored zstd-compressed.

    `auto` (YAML `compression: true`) compresses VARIANT/OBJECT/ARRAY, BINARY and unbounded text columns, the
    ones large enough for compression to pay off.
    """

    OFF = pipeline.CompressionMode.OFF.value, "Off"
    AUTO = pipeline.CompressionMode.AUTO.value, "Large columns (semi-structured, binary, unbounded text)"
    COLUMNS = pipeline.CompressionMode.COLUMNS.value, "Listed columns"


@mirrors(pipeline.DriftPolicy)
class DriftPolicy(models.TextChoices):
    """What a run does when the source's columns differ from the target's (see the pipeline's DriftPolicy)."""

    EVOLVE = (
        pipeline.DriftPolicy.EVOLVE.value,
        "Evolve: add new columns, keep dropped ones, widen compatible types",
    )
    STRICT = pipeline.DriftPolicy.STRICT.value, "Strict: stop the run on any difference"
    IGNORE = pipeline.DriftPolicy.IGNORE.value, "Ignore: load only the columns both sides share"


@mirrors(pipeline.DeleteMode)
class DeleteMode(models.TextChoices):
    """What an incremental run does with target rows whose key left the source (see the pipeline's DeleteMode)."""

    OFF = pipeline.DeleteMode.OFF.value, "Off: keep them"
    HARD = pipeline.DeleteMode.HARD.value, "Hard: delete them"
    SOFT = pipeline.DeleteMode.SOFT.value, "Soft: mark them with _fdm_deleted_at"


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
