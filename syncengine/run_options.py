"""What a run is asked to do beyond a plain sync: a backfill range, and passing the delete guard once.

The range is text as the operator typed it (command line, admin form, JSON body). `run_options_validate` checks
it before a run is queued, so bad input is refused where it was given, naming the field (`from`, `to`); the
run reads it again with the source's own column type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError

from syncconfig.choices import SyncMode
from syncconfig.models import TableConfig
from syncengine.models import SyncRun
from syncengine.pipeline.errors import ConfigurationError

if TYPE_CHECKING:  # the pipeline's modules pull in pyarrow, which processes that only enqueue never need
    from syncengine.pipeline.backfill import BackfillRequest

MAX_VALUE_LENGTH = 100


@dataclass(frozen=True)
class RunOptions:
    """`backfill_from` (empty: no backfill) and `backfill_to` (empty: up to the newest row) bound the range of
    the incremental column a backfill re-extracts; `allow_deletes` lets the run past the delete guard."""

    backfill_from: str = ""
    backfill_to: str = ""
    allow_deletes: bool = False

    @property
    def backfill(self) -> BackfillRequest | None:
        from syncengine.pipeline.backfill import BackfillRequest

        if not self.backfill_from:
            return None
        return BackfillRequest(self.backfill_from, self.backfill_to or None)


def _watermark_kind(table: TableConfig) -> str | None:
    """The kind of the table's stored watermark, as its latest run that wrote one recorded it."""
    latest = (
        SyncRun.objects.filter(table=table, watermark_after__isnull=False)
        .order_by("-queued_at")
        .values_list("watermark_after", flat=True)
        .first()
    )
    return latest.get("type") if isinstance(latest, dict) else None


def run_options_validate(*, table: TableConfig, options: RunOptions, full_refresh: bool = False) -> None:
    """Refuse a backfill the table cannot take, or range values its incremental column cannot hold.

    Raises ValidationError with the offending field (`from`, `to`) as key.
    """
    from syncengine.pipeline.backfill import parse_value

    if not options.backfill_from:
        if options.backfill_to:
            raise ValidationError({"from": "a backfill range needs a from value ('to' alone is not a range)"})
        return
    if table.sync_mode != SyncMode.INCREMENTAL or not table.incremental_column:
        raise ValidationError(
            {"from": f"table {table.name} is not incremental; a backfill needs an incremental column"}
        )
    if full_refresh:
        raise ValidationError({"from": "a backfill and a full refresh exclude each other"})
    kind = _watermark_kind(table)
    if kind is None:
        raise ValidationError(
            {"from": f"table {table.name} has no watermark yet; run a sync before a backfill"}
        )
    bounds = {"from": options.backfill_from, "to": options.backfill_to}
    parsed = {}
    for field, raw in bounds.items():
        if not raw:
            continue
        if len(raw) > MAX_VALUE_LENGTH:
            raise ValidationError({field: f"at most {MAX_VALUE_LENGTH} characters"})
        try:
            parsed[field] = parse_value(kind, raw, field=field)
        except ConfigurationError as exc:
            raise ValidationError({field: exc.message}) from None
    if "to" in parsed and parsed["from"].value > parsed["to"].value:
        raise ValidationError({"to": f"to {options.backfill_to!r} is before from {options.backfill_from!r}"})
