"""Backfill: re-extract a range of the incremental column (`from <= cursor <= to`, `to` optional) and merge it
like an incremental run, without moving the watermark back (the stored one stays the later of old and new).

The range arrives as text (a command line, a form, a JSON body) and is read as the incremental column's kind
(`watermark.kind_for`): numbers exactly, dates and times in ISO 8601. Values are bound, never formatted into SQL.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from syncengine.pipeline.errors import ConfigurationError
from syncengine.pipeline.watermark import Watermark

_EXAMPLES = {
    "number": "a number such as 1200 or 12.5",
    "float": "a number such as 12.5",
    "text": "any text",
    "date": "a date such as 2024-03-01",
    "time": "a time such as 09:30:00",
    "timestamp_ntz": "a timestamp without offset such as 2024-03-01T09:30:00",
    "timestamp_tz": "a timestamp such as 2024-03-01T09:30:00+00:00 (no offset: UTC)",
}


@dataclass(frozen=True)
class BackfillRequest:
    """The range as the operator gave it (`start` is the `from` value, `end` the optional `to`)."""

    start: str
    end: str | None = None

    def describe(self) -> dict[str, str | None]:
        return {"from": self.start, "to": self.end}


@dataclass(frozen=True)
class BackfillRange:
    start: Watermark
    end: Watermark | None
    request: BackfillRequest  # as the operator gave it

    def describe(self) -> dict[str, str | None]:
        """For the run's checks and log: the range as given, and the kind it was read as."""
        return {**self.request.describe(), "type": self.start.kind}


def parse_value(kind: str, raw: str, *, field: str) -> Watermark:
    """`raw` read as a watermark of `kind`; ConfigurationError naming `field` (from/to) when it is not one."""
    text = raw.strip()
    try:
        value = _decode(kind, text)
    except (ValueError, InvalidOperation, KeyError) as exc:
        expected = _EXAMPLES.get(kind, kind)
        raise ConfigurationError(f"backfill {field} {raw!r} is not {expected}") from exc
    return Watermark.of(kind, value)


def _decode(kind: str, text: str) -> Any:
    if not text:
        raise ValueError("empty")
    if kind == "number":
        number = Decimal(text)
        if not number.is_finite():
            raise ValueError("not finite")
        return number
    if kind == "float":
        return float(text)
    if kind == "text":
        return text
    if kind == "date":
        return dt.date.fromisoformat(text)
    if kind == "time":
        return dt.time.fromisoformat(text)
    if kind == "timestamp_ntz":
        value = dt.datetime.fromisoformat(text)
        if value.tzinfo is not None:
            raise ValueError("an offset on a timestamp without time zone")
        return value
    if kind == "timestamp_tz":
        return dt.datetime.fromisoformat(text)
    raise KeyError(kind)


def parse_range(kind: str, request: BackfillRequest, *, table: str) -> BackfillRange:
    """Both ends read as `kind`; `from` after `to` is refused."""
    try:
        start = parse_value(kind, request.start, field="from")
        end = parse_value(kind, request.end, field="to") if request.end is not None else None
    except ConfigurationError as exc:
        raise ConfigurationError(exc.message, table=table) from exc
    if end is not None and start.value > end.value:
        raise ConfigurationError(f"backfill from {request.start!r} is after to {request.end!r}", table=table)
    return BackfillRange(start=start, end=end, request=request)
