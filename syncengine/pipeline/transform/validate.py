"""Data checks made on the batches before anything is published: the primary key is never NULL and, within a
run, unique (for incremental runs: unique per key and incremental-column value, so the newest row is known).

Only the key columns are kept across batches, never the rows themselves. A single integer key (int64, or a
decimal of scale 0 whose values fit int64: NUMBER(38,0) ids) is kept in one growing numpy int64 array, 8 bytes a
row, and checked by sorting it in place: Arrow's `group_by` on decimal128 keys peaked at ~145 bytes a row (717 MB
over 5M keys), so a full sync's peak memory grew with the table (docs/performance.md, "Sliced extract and
memory"). Other keys (composite, text, a value beyond int64, incremental (key, watermark) pairs) keep the Arrow
columns and `group_by`.

When the run knows its key's range beforehand (a sliced full load's planning query found MIN and MAX) and the
keys are dense in it (`dense_range`), the keys inside it are counted instead, in one uint16 per value of the
range (`DenseKeys`): 2 bytes a row for consecutive ids rather than 8, and nothing to sort at the end; keys
outside the range (rows added during the read) go to the int64 array as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from syncengine.pipeline.errors import ValidationFailed

_EXAMPLES = 5
# A range is counted slot by slot while it has at most this many values per row the source holds: then its
# 2 bytes a slot cost no more than the 8 bytes a key of the int64 array.
DENSE_SLOTS_PER_ROW = 4


def dense_range(low: object, high: object, rows: int | None) -> tuple[int, int] | None:
    """(low, high) as ints when a key's range is known and dense enough to count slot by slot; else None."""
    if not isinstance(low, int | Decimal) or not isinstance(high, int | Decimal) or not rows:
        return None
    if int(low) != low or int(high) != high:
        return None
    first, last = int(low), int(high)
    if last < first or last - first + 1 > DENSE_SLOTS_PER_ROW * rows:
        return None
    return first, last


class DenseKeys:
    """How often each key of [low, high] was seen, one uint16 a value (a count stops at 65,535: the key is
    still repeated, only the number of its extra rows is then short)."""

    def __init__(self, low: int, high: int):
        self.low = low
        self.counts = np.zeros(high - low + 1, dtype=np.uint16)

    def add(self, keys: np.ndarray) -> np.ndarray:
        """Count the keys inside the range; return those outside it."""
        inside = (keys >= self.low) & (keys < self.low + self.counts.size)
        slots, seen = np.unique(keys[inside] - self.low, return_counts=True)
        self.counts[slots] = np.minimum(self.counts[slots] + seen, np.iinfo(np.uint16).max)
        return keys[~inside]

    def keys(self) -> np.ndarray:
        """Every key counted, as many times as it was seen (for the generic check, should one be needed)."""
        seen = np.flatnonzero(self.counts)
        return np.repeat(seen + self.low, self.counts[seen])

    def summary(self) -> tuple[int, int, int, list[int]]:
        """Distinct keys, repeated keys, keys seen in all, and the smallest repeated ones."""
        distinct = int(np.count_nonzero(self.counts))
        repeated_slots = np.flatnonzero(self.counts > 1)
        total = int(self.counts.sum(dtype=np.int64))
        examples = (repeated_slots[:_EXAMPLES] + self.low).tolist()
        return distinct, int(repeated_slots.size), total, examples


class KeyCheck:
    def __init__(
        self,
        *,
        table: str,
        key: Sequence[str],
        watermark: str | None,
        duplicates_allowed: bool,
        key_range: tuple[int, int] | None = None,
    ):
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
        # The integer fast path's keys, the first `_used` values of one growing array; None once a batch did not
        # fit it (then `_parts` holds everything).
        self._ints: np.ndarray | None = np.empty(0, dtype=np.int64) if len(self.kept) == 1 else None
        self._used = 0
        # The keys inside `key_range` (see `dense_range`), counted slot by slot.
        self._dense = DenseKeys(*key_range) if key_range is not None and self._ints is not None else None
        self._key_type: pa.DataType | None = None
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
        if self._ints is not None:
            ints = _as_int64(batch.column(self.key[0]))
            if ints is not None:
                self._key_type = batch.column(self.key[0]).type
                self._append(self._dense.add(ints) if self._dense is not None else ints)
                return
            self._to_generic()
        self._parts.append(
            pa.RecordBatch.from_arrays([batch.column(name) for name in self.kept], names=list(self.kept))
        )

    def _append(self, ints: np.ndarray) -> None:
        assert self._ints is not None
        needed = self._used + ints.size
        if needed > self._ints.size:
            # realloc: a large array grows in place (mremap), so the keys are never held twice, and the
            # capacity not yet written is not resident.
            self._ints.resize(max(needed, 2 * self._ints.size), refcheck=False)
        self._ints[self._used : needed] = ints
        self._used = needed

    def _to_generic(self) -> None:
        """Turn the integer keys seen so far back into Arrow of the key's type, for the generic check."""
        if self._dense is not None:
            self._append(self._dense.keys())
            self._dense = None
        if self._used and self._ints is not None:
            column = pa.array(self._ints[: self._used])
            if self._key_type is not None:
                column = column.cast(self._key_type)
            self._parts.append(pa.RecordBatch.from_arrays([column], names=list(self.kept)))
        self._ints = None

    def finish(self) -> dict[str, object]:
        """Raise ValidationFailed on ambiguous duplicates; report what was checked."""
        checks: dict[str, object] = {"rows_checked": self.rows}
        if not self.key:
            return checks
        checks["primary_key_not_null"] = True
        if self._ints is not None and (self._used or self._dense is not None):
            return self._finish_ints(checks)
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

    def _finish_ints(self, checks: dict[str, object]) -> dict[str, object]:
        """The check on the counted range and one sorted int64 array (a repeated key is a run of equal
        neighbours); the two never hold the same key."""
        assert self._ints is not None
        distinct, repeated, total, examples = self._dense.summary() if self._dense else (0, 0, 0, [])
        keys = self._ints[: self._used]
        keys.sort()  # in place: no second copy of the keys
        equal = keys[1:] == keys[:-1]
        # A repeated key's first pair of equal neighbours (equal, and the pair before not): one bool a row more.
        first_pairs = equal.copy()
        np.greater(first_pairs[1:], equal[:-1], out=first_pairs[1:])
        repeated += int(np.count_nonzero(first_pairs))
        distinct += int(keys.size - np.count_nonzero(equal))
        total += int(keys.size)
        checks["distinct_keys"] = distinct
        if repeated and not self.duplicates_allowed:
            examples = sorted(examples + keys[1:][first_pairs][:_EXAMPLES].tolist())[:_EXAMPLES]
            raise ValidationFailed(
                f"{repeated} primary key value(s) occur more than once, e.g. {', '.join(map(str, examples))}",
                table=self.table,
                column=self.key[0],
            )
        checks["primary_key_unique"] = repeated == 0
        checks["duplicates_resolved"] = total - distinct
        return checks


def _as_int64(column: pa.Array) -> np.ndarray | None:
    """The column as int64 values (possibly a view of the batch's buffers: `_append` copies them), or None when
    it is not integer or a value does not fit int64."""
    kind = column.type
    if (pa.types.is_decimal(kind) and kind.scale == 0) or pa.types.is_integer(kind):
        try:
            return column.cast(pa.int64(), safe=True).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:
            return None
    return None


def _examples(table: pa.Table, key: Sequence[str]) -> str:
    rows = table.slice(0, _EXAMPLES).select(list(key)).to_pylist()
    return ", ".join(str(tuple(row.values()) if len(row) > 1 else next(iter(row.values()))) for row in rows)
