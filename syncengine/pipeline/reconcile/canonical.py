"""The canonical text of a value, spelt as SQL on each side, so that one row hashes alike in Snowflake and in
PostgreSQL.

Per kind (the source column's Snowflake type):
- NUMBER(p,s): the decimal with exactly `s` digits after the point (`12.50`), whatever scale the target widened to;
- FLOAT: the shortest text each side prints, with the special values spelt `NaN`, `inf`, `-inf`;
- BOOLEAN: `true` / `false`;
- DATE: `YYYY-MM-DD`;
- TIME: microseconds since midnight;
- TIMESTAMP_NTZ: microseconds since 1970-01-01 of the wall-clock value; TIMESTAMP_TZ/LTZ: microseconds since the
  epoch of the instant (UTC), so an offset never counts, only the moment;
- TEXT: itself; BINARY: upper-case hex.
VARIANT/OBJECT/ARRAY are not spelt here: key order and number spelling differ between the two engines' JSON
printers, so those columns are compared as parsed values (`memory`).

A value becomes a piece `V<length>:<text>` and NULL becomes `N`, so NULL and the empty string differ and no two
rows' concatenations can collide by shifting text between columns.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncengine.pipeline.identifiers import quote_postgres, quote_snowflake

NUMBER, FLOAT, BOOLEAN, DATE, TIME = "number", "float", "boolean", "date", "time"
TIMESTAMP_NTZ, TIMESTAMP_TZ, TEXT, BINARY, JSON = "timestamp_ntz", "timestamp_tz", "text", "binary", "json"

_KINDS = {
    "NUMBER": NUMBER,
    "FLOAT": FLOAT,
    "BOOLEAN": BOOLEAN,
    "DATE": DATE,
    "TIME": TIME,
    "TIMESTAMP_NTZ": TIMESTAMP_NTZ,
    "TIMESTAMP_TZ": TIMESTAMP_TZ,
    "TIMESTAMP_LTZ": TIMESTAMP_TZ,
    "TEXT": TEXT,
    "BINARY": BINARY,
    "VARIANT": JSON,
    "OBJECT": JSON,
    "ARRAY": JSON,
}
# Hex digits of an MD5 kept as the row's number: 60 bits, so a sum over 10^15 rows still fits NUMBER(38,0).
HASH_HEX_DIGITS = 15


def kind_of(snowflake_type: str) -> str:
    return _KINDS[snowflake_type]


@dataclass(frozen=True)
class CompareColumn:
    """A column as the checks see it: its names on both sides, its kind and (for NUMBER) its scale."""

    source_name: str
    target_name: str
    kind: str
    scale: int = 0
    protected: bool = False  # encrypted or compressed: bytea in the target

    @property
    def in_memory(self) -> bool:
        """Compared as values fetched from both sides rather than hashed in SQL."""
        return self.protected or self.kind == JSON


def snowflake_text(column: CompareColumn) -> str:
    """The canonical text of a non-NULL value, in Snowflake SQL."""
    name = quote_snowflake(column.source_name)
    match column.kind:
        case "number":
            return f"TO_VARCHAR(CAST({name} AS NUMBER(38,{column.scale})))"
        case "float":
            return (
                f"CASE WHEN {name} = 'inf'::FLOAT THEN 'inf' WHEN {name} = '-inf'::FLOAT THEN '-inf' "
                f"WHEN {name} = 'NaN'::FLOAT THEN 'NaN' ELSE TO_VARCHAR({name}) END"
            )
        case "boolean":
            return f"CASE WHEN {name} THEN 'true' ELSE 'false' END"
        case "date":
            return f"TO_VARCHAR({name}, 'YYYY-MM-DD')"
        case "time":
            return f"TO_VARCHAR(DATEDIFF(MICROSECOND, '00:00:00'::TIME, {name}))"
        case "timestamp_ntz" | "timestamp_tz":
            return f"TO_VARCHAR(DATE_PART(EPOCH_MICROSECOND, {name}))"
        case "binary":
            return f"HEX_ENCODE({name})"
        case _:
            return name


def postgres_text(column: CompareColumn) -> str:
    """The canonical text of a non-NULL value, in PostgreSQL SQL (the target's column, however widened)."""
    name = quote_postgres(column.target_name)
    match column.kind:
        case "number":
            return f"CAST({name} AS numeric(1000,{column.scale}))::text"
        case "float":
            return (
                f"CASE WHEN {name} = 'Infinity'::float8 THEN 'inf' WHEN {name} = '-Infinity'::float8 THEN '-inf' "
                f"WHEN {name} = 'NaN'::float8 THEN 'NaN' ELSE {name}::float8::text END"
            )
        case "boolean":
            return f"CASE WHEN {name} THEN 'true' ELSE 'false' END"
        case "date":
            return f"to_char({name}, 'YYYY-MM-DD')"
        case "time":
            return f"(EXTRACT(EPOCH FROM {name}) * 1000000)::bigint::text"
        case "timestamp_ntz" | "timestamp_tz":
            return f"(EXTRACT(EPOCH FROM {name}) * 1000000)::numeric(30,0)::text"
        case "binary":
            return f"upper(encode({name}, 'hex'))"
        case _:
            return f"{name}::text"


def snowflake_piece(column: CompareColumn) -> str:
    name, text = quote_snowflake(column.source_name), snowflake_text(column)
    return f"CASE WHEN {name} IS NULL THEN 'N' ELSE 'V' || TO_VARCHAR(LENGTH({text})) || ':' || {text} END"


def postgres_piece(column: CompareColumn) -> str:
    name, text = quote_postgres(column.target_name), postgres_text(column)
    return f"CASE WHEN {name} IS NULL THEN 'N' ELSE 'V' || length({text})::text || ':' || {text} END"


def snowflake_row_md5(columns: tuple[CompareColumn, ...]) -> str:
    return f"MD5({' || '.join(snowflake_piece(column) for column in columns)})"


def postgres_row_md5(columns: tuple[CompareColumn, ...]) -> str:
    return f"md5({' || '.join(postgres_piece(column) for column in columns)})"


def snowflake_hash_number(md5_hex: str) -> str:
    """The first 60 bits of an MD5 (hex text) as an integer, by digit arithmetic: plain SQL that any Snowflake
    (and its emulator) evaluates the same; `TO_NUMBER(..., 'XXX...')` would be shorter on real Snowflake."""
    digits = [
        f"(POSITION(SUBSTR({md5_hex}, {position + 1}, 1) IN '0123456789abcdef') - 1) * "
        f"{16 ** (HASH_HEX_DIGITS - 1 - position)}"
        for position in range(HASH_HEX_DIGITS)
    ]
    return f"CAST({' + '.join(digits)} AS NUMBER(38,0))"


def postgres_hash_number(md5_hex: str) -> str:
    return f"('x' || substr({md5_hex}, 1, {HASH_HEX_DIGITS}))::bit({HASH_HEX_DIGITS * 4})::bigint"
