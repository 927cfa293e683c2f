"""Values as bytes: what is compressed and encrypted for a column's value, and the value it decodes back to."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from typing import Any, cast

import pyarrow as pa


def plaintext_bytes(array: pa.Array) -> pa.Array:
    """A column's values as the bytes that are compressed and encrypted (`decode_plaintext` reverses it).

    Text, JSON and binary as they are; numbers, dates, times, timestamps and booleans by Arrow's text form
    (decimals with their scale, timestamps to the microsecond, shortest round-trip floats).
    """
    kind = array.type
    if isinstance(kind, pa.ExtensionType):
        array = cast(Any, array).storage
        kind = array.type
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return array.cast(pa.binary())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return array.cast(pa.binary())
    return array.cast(pa.string()).cast(pa.binary())


def decode_plaintext(value: bytes, plain_type: str) -> Any:
    """The Python value of plaintext bytes for a column of PostgreSQL type `plain_type`."""
    if plain_type == "bytea":
        return value
    text = value.decode("utf-8")
    if plain_type == "text" or plain_type.startswith(("character", "text")):
        return text
    if plain_type == "jsonb":
        return json.loads(text)
    if plain_type.startswith("numeric"):
        return Decimal(text)
    if plain_type == "boolean":
        return text == "true"
    if plain_type in ("double precision", "real"):
        return float(text)
    if plain_type == "date":
        return datetime.date.fromisoformat(text)
    if plain_type.startswith("timestamp"):
        parsed = datetime.datetime.fromisoformat(text)
        if "with time zone" in plain_type and parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=datetime.UTC)
        return parsed
    if plain_type.startswith("time"):
        return datetime.time.fromisoformat(text)
    if plain_type in ("bigint", "integer", "smallint"):
        return int(text)
    return text
