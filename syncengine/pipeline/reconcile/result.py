"""What a check found, as plain data the Django side stores (`to_json`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class CheckStatus(StrEnum):
    """What the light check after a run found (`light.check_after_publish`): both sides' counts and sums
    equal, a mismatch, or skipped (it could not run, or had nothing to compare)."""

    EQUAL = "equal"
    MISMATCH = "mismatch"
    SKIPPED = "skipped"


MISSING_IN_TARGET = (
    "missing_in_target"  # in Snowflake, not in PostgreSQL (a delete not applied, a lost insert)
)
MISSING_IN_SOURCE = "missing_in_source"  # in PostgreSQL only (deleted in Snowflake)
CHANGED = "changed"  # on both sides with different values in `columns`


@dataclass(frozen=True)
class RowDifference:
    key: tuple[str, ...]  # the key's canonical text, column by column
    kind: str
    columns: tuple[str, ...] = ()  # target column names that differ (CHANGED only)

    def to_json(self) -> dict[str, Any]:
        return {"key": list(self.key), "kind": self.kind, "columns": list(self.columns)}


@dataclass
class DeepResult:
    table: str
    key: tuple[str, ...]  # target names of the key columns
    rows_source: int = 0
    rows_target: int = 0
    segments_checked: int = 0
    differences_found: int = 0
    differences: list[RowDifference] = field(default_factory=list)  # the first `limit`, in key order
    queries_source: int = 0
    queries_target: int = 0
    bytes_source: int = 0  # bytes of the values the queries returned, not the tables' sizes
    bytes_target: int = 0
    seconds: float = 0.0
    compared_in_memory: tuple[str, ...] = ()
    source_as_of: dict[str, str] = field(
        default_factory=dict
    )  # {"statement": id} or {"at": ..., "time_travel": why}
    skipped_columns: tuple[str, ...] = ()

    @property
    def equal(self) -> bool:
        return self.differences_found == 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["differences"] = [difference.to_json() for difference in self.differences]
        data["equal"] = self.equal
        return data
