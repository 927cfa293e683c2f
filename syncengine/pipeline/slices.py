"""Key-range slices: one table read as several queries, `key >= low AND key < high`, so that several Snowflake
sessions can read it at once and no single query's result has to hold the whole table.

Ranges split the first primary key column when it is a NUMBER, DATE or TIMESTAMP: one query reads its MIN, MAX
and the row count (Snowflake answers these from micro-partition metadata, without scanning), and the span is cut
into equal parts. Any other key (text, time, float, none) is read as one slice: cutting text evenly needs its
distribution, and the query that finds it (an ordered ROW_NUMBER, or APPROX_PERCENTILE, which takes numbers
only) costs a sort of the whole table, more than the slices would save. A composite key is split on its
first column: rows that share a first value stay in one slice.

Every row falls in exactly one slice whatever the table holds when the slices run: the first slice is open
below (and also takes NULL keys), the last is open above, and each inner boundary is the exclusive end of one
slice and the inclusive start of the next. MIN and MAX only balance the slices; rows written after the plan,
beyond them, still land in the first or the last.

Each slice is its own statement, so slices read the table as of slightly different moments; a row whose key
moves from one range to another during the read can be read twice (the run's duplicate-key check then fails
it, and a retry reads it again) or missed until the next full load.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass
from decimal import Context, Decimal
from fractions import Fraction
from typing import Any

from snowflake.connector import SnowflakeConnection
from snowflake.connector import errors as sf_errors

from syncengine.pipeline.errors import ConfigurationError
from syncengine.pipeline.extract import SourceQuery, qualified_source
from syncengine.pipeline.identifiers import quote_snowflake
from syncengine.pipeline.source import classify_snowflake_error, close_in_background
from syncengine.pipeline.spec import SourceRef
from syncengine.pipeline.typemap import SourceColumn
from syncengine.pipeline.watermark import Watermark, kind_for

DEFAULT_SOURCE_CONNECTIONS = 2  # Snowflake sessions reading one table at once (FDM_SOURCE_CONNECTIONS)
MIN_SLICE_ROWS = 200_000  # a table needs this many rows per slice to be read in more than one
# Beyond this a table gets more slices than connections, read a few at a time. A source that sends a result
# whole (as the emulator does) holds a slice per session: slices of 250,000 rows peaked higher and ran slower
# (docs/performance.md, "Sliced extract and memory").
MAX_SLICE_ROWS = 100_000
MAX_SLICES = 64  # past this, slices grow instead: each is a statement with its own start-up cost
_EXACT = Context(prec=80)  # enough digits for any NUMBER(38, s) and its scaled whole number
SPLITTABLE_KINDS = frozenset({"number", "date", "timestamp_ntz", "timestamp_tz"})


@dataclass(frozen=True)
class SliceRange:
    """One slice: rows whose `column` is at least `low` and below `high` (None: open on that side; the first
    slice also takes NULL keys). A range with no column is the whole table."""

    index: int = 0
    count: int = 1
    column: SourceColumn | None = None
    low: Watermark | None = None
    high: Watermark | None = None

    @property
    def whole(self) -> bool:
        return self.column is None or (self.low is None and self.high is None)

    def predicate(self) -> tuple[str, tuple[Any, ...]]:
        """The slice's condition as Snowflake SQL with typed qmark binds; ("", ()) for the whole table."""
        if self.whole or self.column is None:
            return "", ()
        quoted = quote_snowflake(self.column.name)
        parts: list[str] = []
        params: tuple[Any, ...] = ()
        if self.low is not None:
            sql, params = self.low.snowflake_filter(quoted, self.column, operator=">=")
            parts.append(sql)
        if self.high is not None:
            sql, upper = self.high.snowflake_filter(quoted, self.column, operator="<")
            parts.append(f"({sql} OR {quoted} IS NULL)" if self.low is None else sql)
            params += upper
        return " AND ".join(parts), params

    def to_json(self) -> dict[str, Any]:
        """Everything the range is, JSON-safe (a task argument for another worker); `from_json` reads it back."""
        column = self.column
        return {
            "index": self.index,
            "count": self.count,
            "column": dataclasses.asdict(column) if column else None,
            "low": self.low.to_json() if self.low else None,
            "high": self.high.to_json() if self.high else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SliceRange:
        return cls(
            index=int(data["index"]),
            count=int(data["count"]),
            column=SourceColumn(**data["column"]) if data["column"] else None,
            low=Watermark.from_json(data["low"]) if data["low"] else None,
            high=Watermark.from_json(data["high"]) if data["high"] else None,
        )

    def describe(self) -> dict[str, Any]:
        """JSON-safe, for the run's checks and evidence."""
        return {
            "slice": self.index + 1,
            "of": self.count,
            "column": self.column.name if self.column else None,
            "from": self.low.to_json()["value"] if self.low else None,
            "below": self.high.to_json()["value"] if self.high else None,
        }


WHOLE_TABLE = SliceRange()


@dataclass(frozen=True)
class SlicePlan:
    """The slices of one read, and what decided them: the row count and range the planning query found
    (None when no query was needed), its Snowflake id, and why the table is read in one slice if it is."""

    ranges: tuple[SliceRange, ...] = (WHOLE_TABLE,)
    rows: int | None = None
    low: Any = None  # the split column's MIN and MAX when the planning query ran
    high: Any = None
    query_id: str | None = None
    reason: str = ""

    def describe(self) -> dict[str, Any]:
        return {
            "slices": len(self.ranges),
            "rows_planned": self.rows,
            "column": self.ranges[0].column.name if self.ranges[0].column else None,
            "reason": self.reason,
            "query_id": self.query_id,
        }


def sliced_query(query: SourceQuery, slice_range: SliceRange) -> SourceQuery:
    """`query` narrowed to one slice: its own filter (if any) AND the slice's predicate, binds in order."""
    condition, params = slice_range.predicate()
    if not condition:
        return query
    joiner = " AND " if query.filtered else " WHERE "
    return SourceQuery(f"{query.sql}{joiner}{condition}", query.params + params, filtered=True)


def splittable(column: SourceColumn | None) -> bool:
    if column is None:
        return False
    try:
        return kind_for(column) in SPLITTABLE_KINDS
    except ConfigurationError:  # a type that carries no watermark (VARIANT, BINARY, BOOLEAN)
        return False


@dataclass(frozen=True)
class SliceLimits:
    """How a table may be sliced: `connections` read at once; a slice per connection once each would hold at
    least `min_rows`; more slices (read `connections` at a time) so that none holds over `max_rows`, up to
    `max_slices`."""

    connections: int
    min_rows: int = MIN_SLICE_ROWS
    max_rows: int = MAX_SLICE_ROWS
    max_slices: int = MAX_SLICES


def slice_count(rows: int, limits: SliceLimits) -> int:
    """How many slices a table of `rows` rows is read in (see SliceLimits)."""
    if limits.connections <= 1 or rows < 2 * limits.min_rows:
        return 1
    parallel = min(limits.connections, rows // limits.min_rows)
    bounded = min(math.ceil(rows / limits.max_rows), limits.max_slices)
    return max(parallel, bounded, 1)


def split_range(column: SourceColumn, low: Any, high: Any, count: int) -> tuple[SliceRange, ...]:
    """`count` slices over [low, high] of `column` (values as Snowflake returns them), open at both ends.
    Boundaries that coincide (a span narrower than `count`) are dropped, so fewer slices may come back."""
    if low is None or high is None or count <= 1:
        return (WHOLE_TABLE,)
    kind = kind_for(column)
    first, last = Watermark.of(kind, low), Watermark.of(kind, high)
    cuts: list[Watermark] = []
    for index in range(1, count):
        cut = Watermark(kind, _between(first, last, Fraction(index, count), column.scale or 0))
        if cut.value > first.value and (not cuts or cut.value > cuts[-1].value):
            cuts.append(cut)
    if not cuts:
        return (WHOLE_TABLE,)
    bounds: list[Watermark | None] = [None, *cuts, None]
    return tuple(
        SliceRange(index=index, count=len(cuts) + 1, column=column, low=bounds[index], high=bounds[index + 1])
        for index in range(len(cuts) + 1)
    )


def _between(first: Watermark, last: Watermark, fraction: Fraction, scale: int) -> Any:
    """The point `fraction` of the way from `first` to `last`, rounded down to a value of the type."""
    low, high, kind = first.value, last.value, first.kind
    index, count = fraction.numerator, fraction.denominator
    if kind == "number":
        # Whole numbers of the column's smallest unit, in Python ints: exact at any precision (Decimal's default
        # context rounds to 28 digits; NUMBER holds 38).
        start, end = int(low.scaleb(scale, _EXACT)), int(high.scaleb(scale, _EXACT))
        return Decimal(start + (end - start) * index // count).scaleb(-scale, _EXACT)
    if kind == "date":
        return dt.date.fromordinal(low.toordinal() + (high.toordinal() - low.toordinal()) * index // count)
    return low + (high - low) * index // count  # timestamps: timedelta arithmetic, whole microseconds


def plan_slices(
    conn: SnowflakeConnection,
    source: SourceRef,
    column: SourceColumn | None,
    limits: SliceLimits,
    *,
    table: str,
) -> SlicePlan:
    """The slices to read `source` in, split on `column` (the first primary key column, source name and type;
    None: no key). One query (MIN, MAX, COUNT) when the key can be split and more than one connection may."""
    if limits.connections <= 1:
        return SlicePlan(reason="one source connection")
    if column is None or not splittable(column):
        return SlicePlan(reason="no primary key of a number, date or timestamp type to split on")
    quoted = quote_snowflake(column.name)
    sql = f"SELECT MIN({quoted}), MAX({quoted}), COUNT(*) FROM {qualified_source(source)}"  # noqa: S608 - quoted
    cursor = conn.cursor()
    try:
        cursor.execute(sql)
        row = cursor.fetchone()
        query_id = cursor.sfqid
    except sf_errors.Error as exc:
        close_in_background(cursor.close, what="source cursor")
        raise classify_snowflake_error(exc, table=table) from exc
    cursor.close()
    low, high, rows = row if row else (None, None, 0)
    rows = int(rows or 0)
    count = slice_count(rows, limits)
    ranges = split_range(column, low, high, count)
    reason = "" if len(ranges) > 1 else f"{rows:,} rows: too few to split"
    return SlicePlan(ranges=ranges, rows=rows, low=low, high=high, query_id=query_id, reason=reason)
