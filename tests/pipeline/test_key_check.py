"""The run's key check on its own: the int64 fast path for single integer keys, and the Arrow path it falls
back to for anything else."""

from __future__ import annotations

import random
from collections.abc import Sequence
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest

from syncengine.pipeline.errors import ValidationFailed
from syncengine.pipeline.transform.validate import DenseKeys, KeyCheck, dense_range

NUMBER = pa.decimal128(38, 0)
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def _batch(ids: Sequence[object], kind: pa.DataType = NUMBER, more: dict | None = None) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"id": pa.array(ids, kind), **(more or {})})


def _check(*batches: pa.RecordBatch, key=("id",), watermark=None, duplicates_allowed=False) -> dict:
    check = KeyCheck(table="ledger", key=key, watermark=watermark, duplicates_allowed=duplicates_allowed)
    for batch in batches:
        check.observe(batch)
    return check.finish()


def test_it_counts_distinct_integer_keys_across_batches():
    checks = _check(_batch([3, 1]), _batch([2, 5]), _batch([], NUMBER), _batch([4]))
    assert checks == {
        "rows_checked": 5,
        "primary_key_not_null": True,
        "distinct_keys": 5,
        "primary_key_unique": True,
        "duplicates_resolved": 0,
    }


@pytest.mark.parametrize("kind", [NUMBER, pa.int64(), pa.int32()])
def test_it_fails_on_a_key_repeated_in_another_batch_naming_examples(kind):
    with pytest.raises(
        ValidationFailed, match=r"2 primary key value\(s\) occur more than once, e.g. 7, 9"
    ) as err:
        _check(_batch([9, 7, 1], kind), _batch([2, 7], kind), _batch([9, 9, 3], kind))
    assert err.value.column == "id"
    assert err.value.table == "ledger"


def test_it_keeps_int64_extremes_apart():
    extremes = [INT64_MIN, INT64_MAX, INT64_MIN + 1, INT64_MAX - 1, 0]
    assert _check(_batch(extremes), _batch([-1, 1]))["distinct_keys"] == 7
    with pytest.raises(ValidationFailed, match=f"e.g. {INT64_MIN}, {INT64_MAX}"):
        _check(_batch(extremes), _batch([INT64_MAX, INT64_MIN]))


def test_a_decimal_beyond_int64_falls_back_and_still_finds_duplicates():
    beyond = INT64_MAX + 1
    first = _batch([1, 2, 3])
    assert _check(first, _batch([beyond, 4]))["distinct_keys"] == 5
    with pytest.raises(
        ValidationFailed, match=f"2 primary key value\\(s\\) occur more than once, e.g. 2, {beyond}"
    ):
        _check(first, _batch([beyond, 2]), _batch([beyond]))


def test_a_null_key_fails_the_check_on_either_path():
    with pytest.raises(ValidationFailed, match="1 row\\(s\\) with a NULL primary key value"):
        _check(_batch([1, 2]), _batch([3, None]))
    with pytest.raises(ValidationFailed, match="NULL primary key value"):
        _check(_batch(["a", None], pa.string()))


def test_incremental_runs_may_repeat_a_key_and_report_it_resolved():
    checks = _check(_batch([1, 2]), _batch([2, 3]), duplicates_allowed=True)
    assert checks["distinct_keys"] == 3
    assert checks["primary_key_unique"] is False
    assert checks["duplicates_resolved"] == 1


def test_text_and_composite_keys_use_the_generic_check():
    with pytest.raises(ValidationFailed, match="1 primary key value\\(s\\) occur more than once, e.g. b"):
        _check(_batch(["a", "b"], pa.string()), _batch(["b"], pa.string()))
    composite = {"line": pa.array([1, 2, 1])}
    checks = _check(_batch([1, 1, 2], pa.int64(), composite), key=("id", "line"))
    assert checks["distinct_keys"] == 3
    with pytest.raises(ValidationFailed, match=r"occur more than once, e.g. \(1, 1\)"):
        _check(_batch([1, 1, 1], pa.int64(), composite), key=("id", "line"))


def test_an_incremental_tie_on_key_and_watermark_still_fails():
    seen = {"updated": pa.array([1, 2, 2])}
    assert (
        _check(_batch([1, 1, 2], more=seen), watermark="updated", duplicates_allowed=True)["distinct_keys"]
        == 2
    )
    with pytest.raises(ValidationFailed, match="more than once with the same updated"):
        _check(_batch([1, 2, 2], more=seen), watermark="updated", duplicates_allowed=True)


def _outcome(batches: Sequence[pa.RecordBatch], key_range, duplicates_allowed: bool):
    check = KeyCheck(
        table="ledger",
        key=("id",),
        watermark=None,
        duplicates_allowed=duplicates_allowed,
        key_range=key_range,
    )
    try:
        for batch in batches:
            check.observe(batch)
        return check.finish()
    except ValidationFailed as exc:
        return str(exc)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("duplicates_allowed", [False, True])
def test_a_known_dense_range_counts_keys_with_the_same_outcome_as_the_sorted_array(seed, duplicates_allowed):
    """Keys inside the planned range are counted slot by slot, those outside (rows added during the read) go
    to the sorted array; checks, counts and messages are those of the array alone."""
    rng = random.Random(seed)
    low, high = 100, 399
    batches = [
        _batch(
            [rng.randint(low - 20, high + 20) for _ in range(rng.randint(0, 120))],
            rng.choice([NUMBER, pa.int64()]),
        )
        for _ in range(rng.randint(1, 5))
    ]
    if seed % 3 == 0:  # unique keys, some beyond the range
        keys = rng.sample(range(low - 20, high + 20), 250)
        batches = [_batch(keys[:100]), _batch(keys[100:])]
    dense = _outcome(batches, dense_range(low, high, rows=300), duplicates_allowed)
    assert dense == _outcome(batches, None, duplicates_allowed)


def test_a_range_is_counted_only_when_its_keys_are_dense_and_whole():
    assert dense_range(Decimal(1), Decimal(1_000), rows=250) == (1, 1_000)
    assert dense_range(1, 1_001, rows=250) is None  # over 4 values of the range per row
    assert dense_range(Decimal("1.5"), Decimal(10), rows=10) is None
    assert dense_range(None, None, rows=0) is None
    assert dense_range("a", "z", rows=10) is None


def test_a_key_counted_past_its_slot_limit_still_counts_as_repeated():
    keys = DenseKeys(0, 9)
    for _ in range(3):
        keys.add(np.full(30_000, 4, dtype=np.int64))
    assert keys.summary()[:2] == (1, 1)
    assert keys.counts[4] == np.iinfo(np.uint16).max
