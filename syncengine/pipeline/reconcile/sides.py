"""The queries a deep check sends, one class per side: key boundaries, per-segment counts and hash sums, and the
rows of a small segment. Both take the same key ranges; key values are always bound, never formatted.

A key range is `[low, high)` over the primary key in lexicographic order (`None`: unbounded). Text keys compare
byte-wise on both sides (Snowflake's default, `COLLATE "C"` in PostgreSQL), so both put a row in the same
segment.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from snowflake.connector import SnowflakeConnection
from snowflake.connector import errors as sf_errors

from syncengine.pipeline.errors import PipelineError
from syncengine.pipeline.identifiers import quote_postgres, quote_snowflake
from syncengine.pipeline.postgres import classify_postgres_error
from syncengine.pipeline.reconcile import canonical
from syncengine.pipeline.reconcile.canonical import CompareColumn
from syncengine.pipeline.reconcile.shape import TableShape
from syncengine.pipeline.source import classify_snowflake_error

Key = tuple[Any, ...]
QUERY_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class KeyRange:
    low: Key | None = None  # inclusive
    high: Key | None = None  # exclusive


@dataclass
class Traffic:
    """What a side was asked and sent back: queries, and the bytes of the values in its answers."""

    queries: int = 0
    bytes: int = 0

    def add(self, rows: Sequence[Sequence[Any]]) -> None:
        self.queries += 1
        self.bytes += sum(_size(value) for row in rows for value in row)


def _size(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    return len(str(value).encode("utf-8"))


def _compare(keys: Sequence[str], values: Key, operator: str, bind: Sequence[str]) -> tuple[str, list[Any]]:
    """`keys <op> values` lexicographically, as OR-ed prefixes (Snowflake has no row-value comparison)."""
    strict = operator.rstrip("=")
    terms: list[str] = []
    params: list[Any] = []
    for position in range(len(keys)):
        last = position == len(keys) - 1
        parts = [f"{keys[index]} = {bind[index]}" for index in range(position)]
        parts.append(f"{keys[position]} {operator if last else strict} {bind[position]}")
        terms.append("(" + " AND ".join(parts) + ")")
        params.extend(values[: position + 1])
    return "(" + " OR ".join(terms) + ")", params


@dataclass
class Side:
    """One database's half of a deep check. Subclasses spell names, binds and the hash."""

    shape: TableShape
    traffic: Traffic = field(default_factory=Traffic)

    relation: str = ""
    extra_filter: str = ""

    def quoted(self, column: CompareColumn) -> str:
        raise NotImplementedError

    def binds(self) -> list[str]:
        raise NotImplementedError

    def run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def keys(self) -> list[str]:
        return [self.quoted(column) for column in self.shape.key]

    def ordered(self) -> list[str]:
        """The key columns as they are compared and sorted."""
        return [self.collated(column) for column in self.shape.key]

    def collated(self, column: CompareColumn) -> str:
        return self.quoted(column)

    def count_bind(self) -> str:
        raise NotImplementedError

    def where(self, key_range: KeyRange) -> tuple[str, list[Any]]:
        conditions, params = [], []
        if self.extra_filter:
            conditions.append(self.extra_filter)
        if key_range.low is not None:
            sql, values = _compare(self.ordered(), key_range.low, ">=", self.binds())
            conditions.append(sql)
            params += values
        if key_range.high is not None:
            sql, values = _compare(self.ordered(), key_range.high, "<", self.binds())
            conditions.append(sql)
            params += values
        return (" WHERE " + " AND ".join(conditions) if conditions else ""), params

    def boundaries(self, key_range: KeyRange, *, segments: int) -> tuple[int, list[Key]]:
        """The rows in the range and the keys that start each of about `segments` equal slices of it (the first
        being the range's smallest key)."""
        keys, order = ", ".join(self.keys()), ", ".join(self.ordered())
        where, params = self.where(key_range)
        sql = (
            f"SELECT {keys}, total FROM (SELECT {keys}, ROW_NUMBER() OVER (ORDER BY {order}) AS position, "  # noqa: S608
            f"COUNT(*) OVER () AS total FROM {self.relation}{where}) AS numbered "
            f"WHERE MOD(position - 1, CEIL(total * 1.0 / {self.count_bind()})) = 0 ORDER BY {order}"
        )
        rows = self.run(sql, [*params, segments])
        self.traffic.add(rows)
        if not rows:
            return 0, []
        return int(rows[0][-1]), [tuple(row[:-1]) for row in rows]

    def checksums(self, key_range: KeyRange, starts: Sequence[Key]) -> dict[int, tuple[int, int]]:
        """Per segment (`starts[i]` to `starts[i + 1]`, the first open below, the last open above, within the
        range): the row count and the sum of the rows' 60-bit hashes."""
        keys, binds = self.ordered(), self.binds()
        branches, case_params = [], []
        for index, start in enumerate(starts[1:]):
            sql, values = _compare(keys, start, "<", binds)
            branches.append(f"WHEN {sql} THEN {index}")
            case_params += values
        segment = f"CASE {' '.join(branches)} ELSE {len(starts) - 1} END" if branches else "0"
        where, params = self.where(key_range)
        sql = (
            f"SELECT segment, COUNT(*), SUM({self.hash_number('digest')}) FROM ("  # noqa: S608
            f"SELECT {segment} AS segment, {self.row_md5(self.shape.hashed)} AS digest "
            f"FROM {self.relation}{where}) AS hashed GROUP BY segment"
        )
        rows = self.run(sql, [*case_params, *params])
        self.traffic.add(rows)
        return {int(index): (int(count), int(total or 0)) for index, count, total in rows}

    def row_digests(self, key_range: KeyRange) -> dict[tuple[str, ...], tuple[str, ...]]:
        """Every row of a (small) range: its key's canonical text, and the MD5 of each hashed column's piece."""
        keys = [self.text(column) for column in self.shape.key]
        digests = [self.row_md5((column,)) for column in self.shape.hashed]
        where, params = self.where(key_range)
        sql = f"SELECT {', '.join(keys + digests)} FROM {self.relation}{where}"  # noqa: S608
        rows = self.run(sql, params)
        self.traffic.add(rows)
        width = len(keys)
        return {tuple(row[:width]): tuple(row[width:]) for row in rows}

    def text(self, column: CompareColumn) -> str:
        raise NotImplementedError

    def row_md5(self, columns: tuple[CompareColumn, ...]) -> str:
        raise NotImplementedError

    def hash_number(self, md5_hex: str) -> str:
        raise NotImplementedError


class SnowflakeSide(Side):
    def __init__(self, shape: TableShape, conn: SnowflakeConnection):
        super().__init__(shape=shape, relation=shape.source_relation)
        self.conn = conn
        self.last_query_id: str | None = None

    def pin(self) -> dict[str, str]:
        """Read the table as of one statement for the rest of the check (time travel), so that rows written to
        Snowflake meanwhile cannot look like differences. Returns where the source is read as of: the
        statement, or, where time travel does not answer (no retention, the emulator), each query's time and
        why."""
        statement = self.last_query_id
        if statement is None or not QUERY_ID.match(statement):
            return {"at": "each query", "time_travel": "no query id to travel to"}
        # The id matched QUERY_ID (a UUID) before it is spelt out: AT takes no bind.
        pinned = f"{self.shape.source_relation} AT(STATEMENT => '{statement}')"
        try:
            self.run(f"SELECT COUNT(*) FROM {pinned}", ())  # noqa: S608 - quoted identifiers, checked id
        except PipelineError as exc:
            return {"at": "each query", "time_travel": exc.message.splitlines()[0]}
        self.traffic.queries += 1
        self.relation = pinned
        return {"statement": statement}

    def quoted(self, column: CompareColumn) -> str:
        return quote_snowflake(column.source_name)

    def count_bind(self) -> str:
        return "?"

    def binds(self) -> list[str]:
        return ["?"] * max(len(self.shape.key), 1)

    def text(self, column: CompareColumn) -> str:
        return canonical.snowflake_text(column)

    def row_md5(self, columns: tuple[CompareColumn, ...]) -> str:
        return canonical.snowflake_row_md5(columns)

    def hash_number(self, md5_hex: str) -> str:
        return canonical.snowflake_hash_number(md5_hex)

    def run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        cursor = self.conn.cursor()
        try:
            cursor.execute(sql, tuple(params) or None, _force_qmark_paramstyle=True)  # type: ignore[call-overload]
            self.last_query_id = cursor.sfqid
            return [tuple(row) for row in cursor.fetchall()]
        except sf_errors.Error as exc:
            raise classify_snowflake_error(exc, table=self.shape.name) from exc
        finally:
            cursor.close()


class PostgresSide(Side):
    def __init__(self, shape: TableShape, conn: psycopg.Connection):
        super().__init__(shape=shape, relation=shape.target_relation, extra_filter=shape.target_filter)
        self.conn = conn

    def quoted(self, column: CompareColumn) -> str:
        return quote_postgres(column.target_name)

    def collated(self, column: CompareColumn) -> str:
        name = quote_postgres(column.target_name)
        return f'{name} COLLATE "C"' if column.kind == canonical.TEXT else name

    def count_bind(self) -> str:
        return "%s::bigint"

    def binds(self) -> list[str]:
        return [f"CAST(%s AS {kind})" for kind in self.shape.key_types] or ["%s"]

    def text(self, column: CompareColumn) -> str:
        return canonical.postgres_text(column)

    def row_md5(self, columns: tuple[CompareColumn, ...]) -> str:
        return canonical.postgres_row_md5(columns)

    def hash_number(self, md5_hex: str) -> str:
        return canonical.postgres_hash_number(md5_hex)

    def run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            return [tuple(row) for row in self.conn.execute(sql, list(params)).fetchall()]
        except psycopg.Error as exc:
            raise classify_postgres_error(exc, table=self.shape.name) from exc
