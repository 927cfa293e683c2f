"""The deep check: every row compared without moving the table, in the manner of data-diff.

1. Split the key space into segments of about equal row counts: the boundaries are keys picked by
   `ROW_NUMBER() OVER (ORDER BY key)` in the source (in the target where the source has no rows).
2. For all segments at once, one query per side returns each segment's row count and the sum of a 60-bit slice
   of MD5(canonical row text) over its rows (`canonical`): equal counts and sums mean equal rows, whatever their
   order.
3. A segment that differs is split again (`fanout` parts) and compared the same way, down to segments of at
   most `leaf_rows` rows; those rows' key texts and per-column digests are fetched from both sides and compared,
   which names each differing key and its columns.
4. JSON, encrypted and compressed columns are compared as values segment by segment (`memory`).

Both sides are read as of one moment: the target in one snapshot (REPEATABLE READ), the source with time
travel, `AT(STATEMENT => <the check's first query>)`. Where Snowflake has no time travel for the table (no
retention; the emulator), the source is read as it is at each query and the result says so (`source_as_of`):
rows that change in Snowflake during the check may then show up as differences, which a second check clears.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import psycopg
from snowflake.connector import SnowflakeConnection

from syncengine.pipeline.hooks import Log
from syncengine.pipeline.protection.keyring import Keyring
from syncengine.pipeline.reconcile import memory
from syncengine.pipeline.reconcile.result import (
    CHANGED,
    MISSING_IN_SOURCE,
    MISSING_IN_TARGET,
    DeepResult,
    RowDifference,
)
from syncengine.pipeline.reconcile.shape import TableShape, table_shape
from syncengine.pipeline.reconcile.sides import Key, KeyRange, PostgresSide, SnowflakeSide
from syncengine.pipeline.spec import TableSpec

DEFAULT_LIMIT = 100


@dataclass(frozen=True)
class DeepOptions:
    segments: int = 64  # first split (more when segments would exceed `max_segment_rows`)
    max_segment_rows: int = 100_000  # bounds what the in-memory comparison holds at once
    fanout: int = 16  # how many parts a differing segment is split into
    leaf_rows: int = 1_000  # segments this small are compared row by row
    limit: int = DEFAULT_LIMIT  # differences kept in the result (all are counted)


def deep_reconcile(  # noqa: PLR0913 - all keyword-only: connections, keyring, options, log
    spec: TableSpec,
    *,
    source_conn: SnowflakeConnection,
    target_conn: psycopg.Connection,
    keyring: Keyring | None = None,
    options: DeepOptions = DeepOptions(),
    log: Log,
) -> DeepResult:
    """Compare the whole table; see the module's docstring for the steps.

    `target_conn` is in autocommit mode: every target query runs in one read-only REPEATABLE READ transaction,
    so a sync that publishes meanwhile changes nothing the check sees.
    """
    started = time.perf_counter()
    with target_conn.transaction():
        target_conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        shape = table_shape(spec, source_conn=source_conn, target_conn=target_conn, log=log)
        check = _Check(
            shape, SnowflakeSide(shape, source_conn), PostgresSide(shape, target_conn), keyring, options
        )
        check.run()
    result = check.result
    result.seconds = time.perf_counter() - started
    result.queries_source, result.bytes_source = check.source.traffic.queries, check.source.traffic.bytes
    result.queries_target, result.bytes_target = check.target.traffic.queries, check.target.traffic.bytes
    log("info", "reconciled", table=spec.name, differences=result.differences_found, rows=result.rows_source)
    return result


def _key_order(key: tuple[str, ...]) -> tuple[tuple[int, Decimal | str], ...]:
    """Keys in their order: numbers (canonical texts of numbers and times) by value, text by text."""
    order: list[tuple[int, Decimal | str]] = []
    for text in key:
        try:
            order.append((0, Decimal(text)))
        except InvalidOperation:
            order.append((1, text))
    return tuple(order)


class _Check:
    def __init__(
        self,
        shape: TableShape,
        source: SnowflakeSide,
        target: PostgresSide,
        keyring: Keyring | None,
        options: DeepOptions,
    ):
        self.shape, self.source, self.target, self.keyring, self.options = (
            shape,
            source,
            target,
            keyring,
            options,
        )
        self.result = DeepResult(
            table=shape.name,
            key=tuple(column.target_name for column in shape.key),
            compared_in_memory=tuple(column.target_name for column in shape.in_memory),
            skipped_columns=shape.skipped,
        )
        self.found: dict[tuple[str, ...], RowDifference] = {}

    def run(self) -> None:
        whole = KeyRange()
        source_rows, _ = self.source.boundaries(
            whole, segments=1
        )  # also the statement the source is pinned to
        self.result.source_as_of = self.source.pin()
        if "statement" in self.result.source_as_of:  # count again as of that statement
            source_rows, _ = self.source.boundaries(whole, segments=1)
        target_rows, _ = self.target.boundaries(whole, segments=1)
        self.result.rows_source, self.result.rows_target = source_rows, target_rows
        wanted = max(
            self.options.segments, -(-max(source_rows, target_rows) // self.options.max_segment_rows)
        )
        ranges = self._split(whole, source_rows, target_rows, wanted)
        self._compare_hashes(ranges)
        if self.shape.in_memory:
            for key_range in ranges:
                self._compare_values(key_range)
        differences = sorted(self.found.values(), key=lambda difference: _key_order(difference.key))
        self.result.differences_found = len(differences)
        self.result.differences = differences[: self.options.limit]

    def _split(self, key_range: KeyRange, source_rows: int, target_rows: int, parts: int) -> list[KeyRange]:
        """Sub-ranges of about equal size, by the side that holds more rows of the range."""
        side = self.source if source_rows >= target_rows else self.target
        _, found = side.boundaries(key_range, segments=parts)
        starts = list(dict.fromkeys(found))  # a target without a unique key may repeat one
        if not starts:
            return [key_range]
        edges: list[Key | None] = [key_range.low, *starts[1:], key_range.high]
        return [KeyRange(edges[index], edges[index + 1]) for index in range(len(edges) - 1)]

    def _compare_hashes(self, ranges: list[KeyRange]) -> None:
        """Compare the ranges' counts and hash sums; descend into those that differ."""
        self.result.segments_checked += len(ranges)
        for key_range, (source_sum, target_sum) in zip(ranges, self._sums(ranges), strict=True):
            if source_sum == target_sum:
                continue
            source_rows, target_rows = source_sum[0], target_sum[0]
            if max(source_rows, target_rows) <= self.options.leaf_rows:
                self._compare_rows(key_range)
                continue
            parts = self._split(key_range, source_rows, target_rows, self.options.fanout)
            if len(parts) <= 1:  # one key range that cannot be split further
                self._compare_rows(key_range)
            else:
                self._compare_hashes(parts)

    def _sums(self, ranges: list[KeyRange]) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
        outer = KeyRange(ranges[0].low, ranges[-1].high)
        starts = [key_range.low for key_range in ranges]
        # The first range may be open below; its start is only a placeholder (segment 0 is "below starts[1]").
        placeholder = [starts[0] or (), *starts[1:]]
        source = self.source.checksums(outer, placeholder)  # type: ignore[arg-type]
        target = self.target.checksums(outer, placeholder)  # type: ignore[arg-type]
        for index in range(len(ranges)):
            yield source.get(index, (0, 0)), target.get(index, (0, 0))

    def _compare_rows(self, key_range: KeyRange) -> None:
        source, target = self.source.row_digests(key_range), self.target.row_digests(key_range)
        names = [column.target_name for column in self.shape.hashed]
        for key in source.keys() - target.keys():
            self.found[key] = RowDifference(key, MISSING_IN_TARGET)
        for key in target.keys() - source.keys():
            self.found[key] = RowDifference(key, MISSING_IN_SOURCE)
        for key in source.keys() & target.keys():
            columns = [name for name, a, b in zip(names, source[key], target[key], strict=True) if a != b]
            if columns:
                self._changed(key, columns)

    def _compare_values(self, key_range: KeyRange) -> None:
        source = memory.source_values(self.source, key_range)
        target = memory.target_values(self.target, key_range, keyring=self.keyring)
        names = [column.target_name for column in self.shape.in_memory]
        for key in source.keys() - target.keys():
            self.found.setdefault(key, RowDifference(key, MISSING_IN_TARGET))
        for key in target.keys() - source.keys():
            self.found.setdefault(key, RowDifference(key, MISSING_IN_SOURCE))
        for key in source.keys() & target.keys():
            columns = [
                name
                for name, a, b in zip(names, source[key], target[key], strict=True)
                if not memory.same(a, b)
            ]
            if columns:
                self._changed(key, columns)
        del source, target  # plaintext leaves memory with the segment

    def _changed(self, key: tuple[str, ...], columns: list[str]) -> None:
        earlier = self.found.get(key)
        merged = tuple(dict.fromkeys([*(earlier.columns if earlier else ()), *columns]))
        self.found[key] = RowDifference(key, CHANGED, merged)
