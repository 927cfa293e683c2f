"""JSON, encrypted and compressed columns, compared as values in memory.

Their canonical text cannot be hashed alike in SQL on both sides: the target holds encrypted or compressed
columns as bytea (the plaintext exists only inside fdm), and the two engines print JSON with different key
orders and number spellings. So a segment's rows of these columns are fetched from both sides: the source's as
the connector returns them (JSON parsed), the target's decrypted and decompressed by `protection.reader` in this
process's memory only. Values are compared parsed (JSON objects as dictionaries, numbers by value) and then
dropped: no plaintext is written anywhere, logged, or kept in a result (differences name keys and columns only).
"""

from __future__ import annotations

import json
import math
from typing import Any

from syncengine.pipeline.identifiers import quote_postgres, quote_snowflake
from syncengine.pipeline.protection.crypto import DecryptionError
from syncengine.pipeline.protection.keyring import Keyring
from syncengine.pipeline.protection.reader import decode_rows
from syncengine.pipeline.reconcile.canonical import JSON, CompareColumn
from syncengine.pipeline.reconcile.sides import KeyRange, PostgresSide, SnowflakeSide
from syncengine.pipeline.spec import TargetRef

RowValues = dict[tuple[str, ...], tuple[Any, ...]]


def source_values(side: SnowflakeSide, key_range: KeyRange) -> RowValues:
    columns = side.shape.in_memory
    keys = [side.text(column) for column in side.shape.key]
    selected = keys + [quote_snowflake(column.source_name) for column in columns]
    where, params = side.where(key_range)
    rows = side.run(f"SELECT {', '.join(selected)} FROM {side.relation}{where}", params)  # noqa: S608
    side.traffic.add(rows)
    width = len(keys)
    return {
        tuple(row[:width]): tuple(
            _parsed(value, column) for value, column in zip(row[width:], columns, strict=True)
        )
        for row in rows
    }


def target_values(side: PostgresSide, key_range: KeyRange, *, keyring: Keyring | None) -> RowValues:
    shape = side.shape
    columns = shape.in_memory
    bound = [name for name in (shape.catalog.row_key if shape.catalog else ()) if shape.target.column(name)]
    names = [column.target_name for column in columns]
    keys = [side.text(column) for column in shape.key]
    selected = keys + [quote_postgres(name) for name in [*names, *bound]]
    where, params = side.where(key_range)
    rows = side.run(f"SELECT {', '.join(selected)} FROM {side.relation}{where}", params)  # noqa: S608
    side.traffic.add(rows)
    width = len(keys)
    records = [dict(zip([*names, *bound], row[width:], strict=True)) for row in rows]
    if shape.catalog is not None and any(column.protected for column in columns):
        _decode(
            side,
            records,
            keyring=keyring,
            protected=[column.target_name for column in columns if column.protected],
        )
    return {
        # psycopg parses jsonb, and the reader's decoding parses protected JSON: both arrive as values.
        tuple(row[:width]): tuple(_plain(record[name]) for name in names)
        for row, record in zip(rows, records, strict=True)
    }


class Undecryptable:
    """Stands for a stored value that does not decrypt (altered, or moved from another row): never equal to a
    source value, so the row and column are reported as changed."""

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = None  # type: ignore[assignment]


def _decode(
    side: PostgresSide, records: list[dict[str, Any]], *, keyring: Keyring | None, protected: list[str]
) -> None:
    """Decrypt and decompress in place; when a value fails to verify, find it column by column, row by row."""
    shape = side.shape
    where = TargetRef(shape.target.schema, shape.target.name)

    def decode(*, records: list[dict[str, Any]]) -> None:
        decode_rows(side.conn, records, table_name=shape.name, target=where, keyring=keyring)

    copies = [dict(record) for record in records]  # decoding works in place and may stop half-way
    try:
        decode(records=copies)
    except DecryptionError:
        pass
    else:
        for record, decoded in zip(records, copies, strict=True):
            record.update(decoded)
        return
    bound = list(shape.catalog.row_key) if shape.catalog else []
    for record in records:
        for name in protected:
            single = {name: record[name], **{key: record[key] for key in bound}}
            try:
                decode(records=[single])
                record[name] = single[name]
            except DecryptionError:
                record[name] = Undecryptable()


def _parsed(value: Any, column: CompareColumn) -> Any:
    """A source value: the connector returns VARIANT, OBJECT and ARRAY as JSON text."""
    if column.kind == JSON and isinstance(value, str | bytes):
        return json.loads(value)
    return _plain(value)


def _plain(value: Any) -> Any:
    return bytes(value) if isinstance(value, bytearray | memoryview) else value


def same(left: Any, right: Any) -> bool:
    """Values equal, NaN equal to NaN (a float column's NaN synced as NaN is no difference)."""
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left) and math.isnan(right):
        return True
    return bool(left == right)
