"""Typed results: every stage reports rows, bytes and seconds, which the recorder stores on the run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class StageMetrics:
    """extract: rows read and Arrow buffer bytes from the source; transform: rows checked; load: rows and bytes
    COPY sent to the staging table. Seconds are the time spent in the stage."""

    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0


@dataclass
class SyncResult:
    table: str
    mode: str  # the mode actually used: "full" (also for a full refresh of an incremental table) or "incremental"
    extract: StageMetrics = field(default_factory=StageMetrics)
    transform: StageMetrics = field(default_factory=StageMetrics)
    load: StageMetrics = field(default_factory=StageMetrics)
    publish_seconds: float = 0.0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_deleted: int = 0
    bytes_before_compression: int = 0  # plaintext bytes of the compressed columns' values (clear ones only)
    bytes_after_compression: int = 0  # the same values as zstd frames
    watermark_before: Any = None  # JSON-safe representation (see pipeline.watermark)
    watermark_after: Any = None
    target_created: bool = False
    drift: list[str] = field(default_factory=list)  # what changed in the source and what was done about it
    checks: dict[str, Any] = field(default_factory=dict)  # validation results (row counts, key checks)
    evidence: RunEvidence = field(default_factory=lambda: RunEvidence())
    # Seconds per phase, fixed costs included (lock, target state, source session, metadata, staging table,
    # rows, publish, check): what a small table's run spends besides its rows. Not recorded on the run.
    phases: dict[str, float] = field(default_factory=dict)


@dataclass
class RunEvidence:
    """What an auditor needs to replay the run: the Snowflake queries (ids, SQL and binds), both tables' columns
    as the run saw them, and the ids of the keys it encrypted with (never a key)."""

    queries: list[dict[str, Any]] = field(default_factory=list)  # {"purpose", "query_id", "sql", "params"}
    source_columns: list[dict[str, Any]] = field(default_factory=list)  # {"name", "type", "nullable"}
    target_columns: list[dict[str, Any]] = field(default_factory=list)  # {"name", "type", "source"}
    key_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "queries": self.queries,
            "source_columns": self.source_columns,
            "target_columns": self.target_columns,
            "key_ids": self.key_ids,
        }
