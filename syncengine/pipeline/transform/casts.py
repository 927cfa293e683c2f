"""Casts each extracted column to the Arrow type its target column is loaded with (see `typemap.wire_type`).

Casts are Arrow's safe casts, so a value that does not fit its target type (a number too wide for numeric(p,s),
digits lost to a smaller scale) fails the run naming the column, before anything reaches PostgreSQL.
Timestamps and times are floored to microseconds, PostgreSQL's resolution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from syncengine.pipeline.errors import SchemaDriftError, TypeOverflowError
from syncengine.pipeline.schema.drift import LoadColumn


def _to_microseconds(array: pa.Array) -> pa.Array:
    if pa.types.is_timestamp(array.type) and array.type.unit == "ns":
        floored = pc.floor_temporal(array, unit="microsecond")
        return floored.cast(pa.timestamp("us", tz=array.type.tz), safe=False)
    if pa.types.is_time(array.type) and array.type.unit == "ns":
        # Times of day are never negative, so truncation is flooring.
        return array.cast(pa.time64("us"), safe=False)
    return array


def cast_column(array: pa.Array, wire: pa.DataType) -> pa.Array:
    if array.type == wire:
        return array
    array = _to_microseconds(array)
    if pa.types.is_integer(array.type) and pa.types.is_decimal(wire):
        # Arrow checks an int64 -> decimal(p,s) cast against p statically; go through a 38-digit decimal so
        # that the check is made on the values instead.
        array = array.cast(pa.decimal128(38, 0))
    if pa.types.is_timestamp(array.type) and pa.types.is_timestamp(wire) and array.type.tz and wire.tz:
        # Same instants, only the zone label differs (the connector says Etc/UTC).
        return array.cast(wire)
    return array.cast(wire, safe=True)


def cast_batch(
    batch: pa.RecordBatch,
    columns: Sequence[LoadColumn],
    *,
    table: str,
    wires: Mapping[str, pa.DataType] | None = None,
) -> pa.RecordBatch:
    """The batch with every column cast to its wire type and named by its target column.

    `wires` overrides the type of some columns by target name: protected columns are cast to the type of
    their plaintext, which `protect` then turns into bytes.
    """
    arrays = []
    for index, column in enumerate(columns):
        array = batch.column(index)
        wire = wires.get(column.name, column.wire) if wires else column.wire
        target_type = column.plan.plain_type or column.target_type
        try:
            arrays.append(cast_column(array, wire))
        except pa.ArrowNotImplementedError:
            raise SchemaDriftError(
                f"cannot convert source values of type {array.type} to {target_type}",
                table=table,
                column=column.name,
            ) from None
        except pa.ArrowInvalid as exc:
            raise TypeOverflowError(
                f"a value does not fit the target type {target_type}: {exc}",
                table=table,
                column=column.name,
            ) from None
    return pa.RecordBatch.from_arrays(arrays, names=[column.name for column in columns])
