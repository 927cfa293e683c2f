"""Data checks made on the batches before anything is published: the primary key is never NULL and, within a
run, unique (for incremental runs: unique per key and incremental-column value, so the newest row is known).

Only the key columns are kept across batches (a few bytes per row), never the rows themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from syncengine.pipeline.errors import ValidationFailed

_EXAMPLES = 5


class KeyCheck:
    def __init__(self, *, table: str, key: Sequence[str], watermark: str | None, duplicates_allowed: bool):
        self.table = table
        self.key = tuple(key)
        self.watermark = watermark
        # Incremental runs may see a key twice (updated between two reads of an unenforced source key) and keep
        # the row with the newest incremental-column value; full runs may not.
        self.duplicates_allowed = duplicates_allowed
        self.kept = (
            (*self.key, watermark)
            if duplicates_allowed and watermark and watermark not in self.key
            else self.key
        )
        self._parts: list[pa.RecordBatch] = []
        self.rows = 0

    def observe(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        if not self.key:
            return
        for name in self.key:
            nulls = batch.column(name).null_count
            if nulls:
                raise ValidationFailed(
                    f"{nulls} row(s) with a NULL primary key value", table=self.table, column=name
                )
        self._parts.append(
            pa.RecordBatch.from_arrays([batch.column(name) for name in self.kept], names=list(self.kept))
        )

    def finish(self) -> dict[str, object]:
        """Raise ValidationFailed on ambiguous duplicates; report what was checked."""
        checks: dict[str, object] = {"rows_checked": self.rows}
        if not self.key:
            return checks
        checks["primary_key_not_null"] = True
        if not self._parts:
            checks["distinct_keys"] = 0
            return checks
        keys = pa.Table.from_batches(self._parts)
        self._parts = []
        per_key = keys.group_by(list(self.key)).aggregate([([], "count_all")])
        checks["distinct_keys"] = per_key.num_rows
        repeated = per_key.filter(pc.greater(per_key["count_all"], pa.scalar(1)))
        if repeated.num_rows and not self.duplicates_allowed:
            raise ValidationFailed(
                f"{repeated.num_rows} primary key value(s) occur more than once, e.g. {_examples(repeated, self.key)}",
                table=self.table,
                column=", ".join(self.key),
            )
        if repeated.num_rows and self.kept != self.key:
            per_version = keys.group_by(list(self.kept)).aggregate([([], "count_all")])
            ties = per_version.filter(pc.greater(per_version["count_all"], pa.scalar(1)))
            if ties.num_rows:
                raise ValidationFailed(
                    f"{ties.num_rows} primary key value(s) occur more than once with the same {self.watermark}, so "
                    f"the newest row is unknown, e.g. {_examples(ties, self.key)}",
                    table=self.table,
                    column=", ".join(self.key),
                )
        checks["primary_key_unique"] = repeated.num_rows == 0
        checks["duplicates_resolved"] = int(keys.num_rows - per_key.num_rows)
        return checks


def _examples(table: pa.Table, key: Sequence[str]) -> str:
    rows = table.slice(0, _EXAMPLES).select(list(key)).to_pylist()
    return ", ".join(str(tuple(row.values()) if len(row) > 1 else next(iter(row.values()))) for row in rows)
