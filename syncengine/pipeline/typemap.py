"""Exact type mapping: Snowflake column types to PostgreSQL column types, and PostgreSQL column types to the
Arrow types that are sent to them.

PostgreSQL types are spelled the way `format_type()` prints them, so a type read back from the catalog
compares equal to the type fdm would create. The Arrow "wire" type of a column is what the staging COPY sends:
binary COPY needs the Arrow type to match the column exactly (decimal128 for numeric, the JSON extension type
for jsonb), so every batch is cast to these types before it is loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

from syncengine.pipeline.errors import SourceSchemaError

TEXT = "text"
JSONB = "jsonb"
BYTEA = "bytea"
BOOLEAN = "boolean"
DATE = "date"
TIME = "time without time zone"
TIMESTAMP = "timestamp without time zone"
TIMESTAMPTZ = "timestamp with time zone"
DOUBLE = "double precision"

# Snowflake NUMBER's default when the catalog gives no precision (INTEGER is NUMBER(38,0)).
DEFAULT_PRECISION = 38
# Arrow's decimal128 holds at most 38 digits, which is also Snowflake's NUMBER limit.
MAX_DECIMAL128_PRECISION = 38
MAX_DECIMAL256_PRECISION = 76

_NUMERIC = re.compile(r"^numeric\((\d+),(\d+)\)$")
_VARCHAR = re.compile(r"^character varying\((\d+)\)$")
_CHAR = re.compile(r"^character\((\d+)\)$")
_TIMESTAMP_WITH_PRECISION = re.compile(r"^(timestamp|time)\(\d\) (with(?:out)? time zone)$")
_INTEGER_DIGITS = {"smallint": 5, "integer": 10, "bigint": 19}
_INTEGER_ARROW = {"smallint": pa.int16(), "integer": pa.int32(), "bigint": pa.int64()}


@dataclass(frozen=True)
class SourceColumn:
    """A Snowflake column as its catalog describes it."""

    name: str
    data_type: str  # Snowflake's type name in upper case: NUMBER, TEXT, TIMESTAMP_NTZ, VARIANT, ...
    precision: int | None = None
    scale: int | None = None
    length: int | None = None
    nullable: bool = True

    @property
    def display_type(self) -> str:
        if self.data_type == "NUMBER":
            return f"NUMBER({self.precision or DEFAULT_PRECISION},{self.scale or 0})"
        return self.data_type


def numeric(precision: int, scale: int) -> str:
    return f"numeric({precision},{scale})"


_SIMPLE_SNOWFLAKE_TYPES = {
    "FLOAT": DOUBLE,
    "BOOLEAN": BOOLEAN,
    "DATE": DATE,
    "TIME": TIME,
    "TIMESTAMP_NTZ": TIMESTAMP,
    "TIMESTAMP_TZ": TIMESTAMPTZ,
    "TIMESTAMP_LTZ": TIMESTAMPTZ,
    "VARIANT": JSONB,
    "OBJECT": JSONB,
    "ARRAY": JSONB,
    "BINARY": BYTEA,
    "TEXT": TEXT,
}

# Synonyms that a catalog or a DESCRIBE may print instead of the canonical name.
_SNOWFLAKE_SYNONYMS = {
    "FIXED": "NUMBER",
    "DECIMAL": "NUMBER",
    "NUMERIC": "NUMBER",
    "REAL": "FLOAT",
    "DOUBLE": "FLOAT",
    "VARCHAR": "TEXT",
    "STRING": "TEXT",
    "CHAR": "TEXT",
    "CHARACTER": "TEXT",
    "VARBINARY": "BINARY",
    "DATETIME": "TIMESTAMP_NTZ",
    "TIMESTAMP": "TIMESTAMP_NTZ",
}


def canonical_snowflake_type(data_type: str) -> str:
    name = data_type.strip().upper().split("(")[0].strip()
    return _SNOWFLAKE_SYNONYMS.get(name, name)


def postgres_type_for(column: SourceColumn, *, table: str) -> str:
    """The PostgreSQL type that holds every value of a Snowflake column exactly.

    NUMBER(p,s) becomes numeric(p,s), never a float and never bigint (NUMBER(38,0) holds 38 digits).
    Text becomes `text` rather than varchar(n): lengths count characters on both sides, `text` costs nothing
    extra in PostgreSQL, and a length raised in Snowflake then needs no change in the target.
    """
    data_type = canonical_snowflake_type(column.data_type)
    if data_type == "NUMBER":
        precision = column.precision or DEFAULT_PRECISION
        scale = column.scale or 0
        return numeric(precision, scale)
    if data_type in _SIMPLE_SNOWFLAKE_TYPES:
        return _SIMPLE_SNOWFLAKE_TYPES[data_type]
    raise SourceSchemaError(
        f"type {column.data_type} is not supported; exclude the column or convert it in a Snowflake view",
        table=table,
        column=column.name,
    )


def parse_numeric(pg_type: str) -> tuple[int, int] | None:
    match = _NUMERIC.match(pg_type)
    return (int(match.group(1)), int(match.group(2))) if match else None


def varchar_length(pg_type: str) -> int | None:
    match = _VARCHAR.match(pg_type) or _CHAR.match(pg_type)
    return int(match.group(1)) if match else None


def wire_type(pg_type: str, source: SourceColumn | None = None) -> pa.DataType | None:
    """The Arrow type to send for a PostgreSQL column type, or None when fdm cannot load that type."""
    if match := _TIMESTAMP_WITH_PRECISION.match(pg_type):
        # An operator narrowed the fractional digits; PostgreSQL rounds the microseconds it is sent.
        pg_type = f"{match.group(1)} {match.group(2)}"
    if (parsed := parse_numeric(pg_type)) is not None:
        precision, scale = parsed
        if precision <= MAX_DECIMAL128_PRECISION:
            return pa.decimal128(precision, scale)
        # Widened past 38 digits by schema evolution (numeric(38,0) joined with numeric(38,2), say).
        return pa.decimal256(precision, scale) if precision <= MAX_DECIMAL256_PRECISION else None
    if pg_type == "numeric":
        scale = (source.scale or 0) if source is not None else 0
        return pa.decimal128(MAX_DECIMAL128_PRECISION, scale)
    if pg_type in _INTEGER_ARROW:
        return _INTEGER_ARROW[pg_type]
    if pg_type in (TEXT, "character varying", "character") or varchar_length(pg_type) is not None:
        return pa.string()
    return {
        JSONB: pa.json_(),
        BYTEA: pa.binary(),
        BOOLEAN: pa.bool_(),
        DATE: pa.date32(),
        TIME: pa.time64("us"),
        TIMESTAMP: pa.timestamp("us"),
        TIMESTAMPTZ: pa.timestamp("us", tz="UTC"),
        DOUBLE: pa.float64(),
        "real": pa.float32(),
    }.get(pg_type)


def holds(target_type: str, desired_type: str) -> bool:
    """Can a target column of `target_type` hold every value of `desired_type` exactly, as it is?"""
    if target_type == desired_type:
        return True
    desired_numeric = parse_numeric(desired_type)
    if desired_numeric is not None:
        precision, scale = desired_numeric
        if target_type == "numeric":
            return True
        if (target_numeric := parse_numeric(target_type)) is not None:
            target_precision, target_scale = target_numeric
            return target_scale >= scale and target_precision - target_scale >= precision - scale
        if target_type in _INTEGER_DIGITS:
            # bigint holds 18 full digits (19 only partly), integer 9, smallint 4.
            return scale == 0 and precision < _INTEGER_DIGITS[target_type]
        return False
    if desired_type == TEXT:
        return target_type in ("character varying",)
    return False


def widened(target_type: str, desired_type: str) -> str | None:
    """A type that holds both the target's current values and the desired type's, or None when there is no
    lossless common type (a change of kind: text to number, timestamp to timestamptz, ...)."""
    desired_numeric = parse_numeric(desired_type)
    if desired_numeric is not None:
        precision, scale = desired_numeric
        if (target_numeric := parse_numeric(target_type)) is not None:
            target_precision, target_scale = target_numeric
        elif target_type in _INTEGER_DIGITS:
            target_precision, target_scale = _INTEGER_DIGITS[target_type], 0
        else:
            return None
        new_scale = max(scale, target_scale)
        new_integer_digits = max(precision - scale, target_precision - target_scale)
        return numeric(new_integer_digits + new_scale, new_scale)
    if desired_type == TEXT and (varchar_length(target_type) is not None or target_type == "character"):
        return TEXT
    if desired_type == DOUBLE and target_type == "real":
        return DOUBLE
    return None
