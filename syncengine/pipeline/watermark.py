"""Watermarks: the highest incremental-column value a run has published, kept typed so it binds back exactly.

A watermark is stored as JSON, `{"type": "timestamp_ntz", "value": "2024-01-02T03:04:05.123456"}`, in
`_fdm.sync_state` in the target database and written in the same transaction that publishes the rows, so the
data and the watermark can never disagree. Values are encoded losslessly (numbers as decimal strings, times in
ISO 8601 with microseconds) and bound to Snowflake with an explicit type, never formatted into SQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from syncengine.pipeline.errors import ConfigurationError
from syncengine.pipeline.typemap import SourceColumn, canonical_snowflake_type

# Spelled out in the SQL below too: plain lower-case names that need no quoting.
STATE_SCHEMA = "_fdm"
STATE_TABLE = "sync_state"

_KIND_BY_SNOWFLAKE_TYPE = {
    "NUMBER": "number",
    "FLOAT": "float",
    "TEXT": "text",
    "DATE": "date",
    "TIME": "time",
    "TIMESTAMP_NTZ": "timestamp_ntz",
    "TIMESTAMP_TZ": "timestamp_tz",
    "TIMESTAMP_LTZ": "timestamp_tz",
}
# The stored JSON value of each kind back to its Python value.
_DECODERS: dict[str, Callable[[str], object]] = {
    "number": Decimal,
    "float": float,
    "text": str,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "timestamp_ntz": dt.datetime.fromisoformat,
    "timestamp_tz": dt.datetime.fromisoformat,
}


def kind_for(column: SourceColumn) -> str:
    kind = _KIND_BY_SNOWFLAKE_TYPE.get(canonical_snowflake_type(column.data_type))
    if kind is None:
        raise ConfigurationError(f"type {column.data_type} cannot carry a watermark", column=column.name)
    return kind


@dataclass(frozen=True)
class Watermark:
    kind: str
    value: Any  # Decimal, float, str, date, time, or datetime (naive for timestamp_ntz, UTC for timestamp_tz)

    @classmethod
    def of(cls, kind: str, value: Any) -> Watermark:
        """Normalise a value read from an Arrow batch (ints for NUMBER(p,0), datetimes in UTC)."""
        if kind == "number":
            value = value if isinstance(value, Decimal) else Decimal(str(value))
        elif kind == "timestamp_tz":
            value = value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
        elif kind == "timestamp_ntz" and value.tzinfo is not None:
            value = value.replace(tzinfo=None)
        return cls(kind, value)

    def to_json(self) -> dict[str, Any]:
        value = self.value
        if self.kind == "number":
            encoded: Any = str(value)
        elif self.kind == "float":
            encoded = repr(float(value))
        elif self.kind in ("date", "time", "timestamp_ntz", "timestamp_tz"):
            encoded = value.isoformat(timespec="microseconds") if self.kind != "date" else value.isoformat()
        else:
            encoded = value
        return {"type": self.kind, "value": encoded}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Watermark:
        kind, raw = data["type"], data["value"]
        return cls.of(kind, _DECODERS[kind](raw))

    def snowflake_filter(
        self, quoted_column: str, column: SourceColumn, *, operator: str = ">="
    ) -> tuple[str, tuple[Any, ...]]:
        """`column >= watermark` (or `operator`: `<=` ends a backfill range, `<` a key-range slice) as Snowflake
        SQL with one typed bind (qmark style)."""
        if operator not in (">=", "<=", "<"):
            raise ValueError(f"unsupported operator {operator!r}")
        if self.kind == "number":
            # Bound as text and cast to the column's own type: exact for any scale, no float on the way.
            precision = column.precision or 38
            scale = column.scale or 0
            return f"{quoted_column} {operator} CAST(? AS NUMBER({precision},{scale}))", (
                ("TEXT", str(self.value)),
            )
        binding = {
            "float": ("REAL", self.value),
            "text": ("TEXT", self.value),
            "date": ("DATE", self.value),
            "time": ("TIME", self.value),
            "timestamp_ntz": ("TIMESTAMP_NTZ", self.value),
            "timestamp_tz": ("TIMESTAMP_TZ", self.value),
        }[self.kind]
        return f"{quoted_column} {operator} ?", (binding,)

    def later(self, other: Watermark | None) -> Watermark:
        return self if other is None or self.value > other.value else other


@dataclass(frozen=True)
class SyncState:
    """What the target database remembers about a table between runs (one row of `_fdm.sync_state`)."""

    table_name: str
    target_schema: str
    target_table: str
    mode: str
    watermark_column: str | None
    watermark: Watermark | None
    rows_published: int = 0
    # The run that published this state (the caller's id for it), and what it published: committed with the
    # data, so a run whose process died right after the commit can still be recorded as it ended.
    run_id: str | None = None
    run_result: dict[str, Any] | None = None


def state_table_sql() -> str:
    return (
        "CREATE TABLE IF NOT EXISTS _fdm.sync_state ("
        " table_name text PRIMARY KEY,"
        " target_schema text NOT NULL,"
        " target_table text NOT NULL,"
        " mode text NOT NULL,"
        " watermark_column text,"
        " watermark jsonb,"
        " rows_published bigint NOT NULL DEFAULT 0,"
        " updated_at timestamptz NOT NULL DEFAULT now(),"
        " run_id text,"
        " run_result jsonb)"
    )


# Added after the first release: tables created before then gain them.
STATE_TABLE_UPGRADE_SQL = "ALTER TABLE _fdm.sync_state ADD COLUMN IF NOT EXISTS run_id text, ADD COLUMN IF NOT EXISTS run_result jsonb"
STATE_TABLE_CURRENT_SQL = (
    "SELECT count(*) = 2 FROM pg_attribute WHERE attrelid = to_regclass('_fdm.sync_state') "
    "AND attname IN ('run_id', 'run_result') AND NOT attisdropped"
)


def read_state(conn: psycopg.Connection, table_name: str) -> SyncState | None:
    row = conn.execute(
        "SELECT target_schema, target_table, mode, watermark_column, watermark, rows_published "
        "FROM _fdm.sync_state WHERE table_name = %s",
        (table_name,),
    ).fetchone()
    if row is None:
        return None
    target_schema, target_table, mode, watermark_column, watermark_json, rows_published = row
    return SyncState(
        table_name=table_name,
        target_schema=target_schema,
        target_table=target_table,
        mode=mode,
        watermark_column=watermark_column,
        watermark=Watermark.from_json(watermark_json) if watermark_json else None,
        rows_published=int(rows_published),
    )


def write_state(conn: psycopg.Connection, state: SyncState) -> None:
    """Record the table's watermark; called inside the publishing transaction."""
    conn.execute(
        "INSERT INTO _fdm.sync_state AS s "
        "(table_name, target_schema, target_table, mode, watermark_column, watermark, rows_published, updated_at, "
        "run_id, run_result) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, now(), %s, %s) "
        "ON CONFLICT (table_name) DO UPDATE SET target_schema = EXCLUDED.target_schema, "
        "target_table = EXCLUDED.target_table, mode = EXCLUDED.mode, "
        "watermark_column = EXCLUDED.watermark_column, watermark = EXCLUDED.watermark, "
        "rows_published = EXCLUDED.rows_published, updated_at = EXCLUDED.updated_at, "
        "run_id = EXCLUDED.run_id, run_result = EXCLUDED.run_result",
        (
            state.table_name,
            state.target_schema,
            state.target_table,
            state.mode,
            state.watermark_column,
            Jsonb(state.watermark.to_json()) if state.watermark is not None else None,
            state.rows_published,
            state.run_id,
            Jsonb(state.run_result) if state.run_result is not None else None,
        ),
    )


def read_run_state(conn: psycopg.Connection, table_name: str, *, run_id: str) -> dict[str, Any] | None:
    """What run `run_id` published into `table_name`, when it is the run that last did (its `run_result`,
    with the watermark it wrote and the commit time); None otherwise, or before fdm ever synced the table."""
    if not conn.execute(STATE_TABLE_CURRENT_SQL).fetchone() == (True,):
        return None
    row = conn.execute(
        "SELECT run_result, watermark, updated_at FROM _fdm.sync_state WHERE table_name = %s AND run_id = %s",
        (table_name, run_id),
    ).fetchone()
    if row is None:
        return None
    result, watermark, committed_at = row
    return {**(result or {}), "watermark_after": watermark, "at": committed_at.isoformat()}
