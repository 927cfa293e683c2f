"""Row keys: each row's primary key as unambiguous bytes, which every ciphertext of the row is bound to.

The sync builds them from Arrow batches (`row_keys`); reads and key rotation rebuild the same bytes from the
values PostgreSQL returns (`row_keys_from_values`), whatever Arrow type those values are given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc


def _canonical_part(array: pa.Array) -> pa.Array:
    """One key column as bytes that do not depend on how the value was typed on the way (see `row_keys`)."""
    kind = array.type
    if pa.types.is_timestamp(kind) or pa.types.is_time(kind) or pa.types.is_date(kind):
        if pa.types.is_timestamp(kind) and kind.unit != "us":
            array = array.cast(pa.timestamp("us", tz=kind.tz))
        storage = pa.int64() if not pa.types.is_date32(kind) else pa.int32()
        text = array.cast(storage).cast(pa.string())
    elif pa.types.is_decimal(kind):
        text = array.cast(pa.string())
        if kind.scale != 0:  # scale 0 has no point to trim after (the regexes were 2/3 of a key's cost)
            # numeric(12,2) 5.50 and numeric(10,0) 5 are the same key after a widening: drop trailing zeros.
            text = pc.replace_substring_regex(text, r"(\.\d*?)0+$", r"\1")
            text = pc.replace_substring_regex(text, r"\.$", "")
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        return array.cast(pa.binary())
    elif isinstance(kind, pa.ExtensionType):
        text = cast(Any, array).storage.cast(pa.string())
    else:
        text = array.cast(pa.string())
    return text.cast(pa.binary())


def row_keys(columns: Sequence[pa.Array]) -> pa.Array:
    """Each row's primary key as unambiguous bytes: `length:value;` per key column, in key order.

    Integers, decimals (trailing zeros dropped), text and booleans by their text; dates, times and timestamps
    by their integer count of days or microseconds. Reads rebuild the same bytes from the values PostgreSQL
    returns (`row_keys_from_values`), whatever Arrow type those values are given.
    """
    parts: list[pa.Array | pa.Scalar] = []
    for column in columns:
        part = _canonical_part(column)
        parts.extend(
            [
                pc.binary_length(cast(Any, part)).cast(pa.string()).cast(pa.binary()),
                pa.scalar(b":"),
                part,
                pa.scalar(b";"),
            ]
        )
    return cast(pa.Array, pc.binary_join_element_wise(*cast(list[Any], parts), pa.scalar(b"")))


def row_keys_from_values(rows: Sequence[Sequence[object]]) -> list[bytes]:
    """`row_keys` for key values as psycopg returns them (Decimal, datetime, date, str, int, ...)."""
    if not rows:
        return []
    width = len(rows[0])
    columns = []
    for index in range(width):
        values: list[Any] = [row[index] for row in rows]
        columns.append(pa.array(values))
    return [value if isinstance(value, bytes) else b"" for value in row_keys(columns).to_pylist()]
