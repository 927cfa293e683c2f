"""The type rules on their own: what each Snowflake type becomes, what a target type can hold, and the lossless
common type that schema evolution widens to."""

from __future__ import annotations

import pyarrow as pa
import pytest

from syncengine.pipeline.errors import SourceSchemaError
from syncengine.pipeline.typemap import SourceColumn, holds, postgres_type_for, widened, wire_type


@pytest.mark.parametrize(
    ("data_type", "precision", "scale", "expected"),
    [
        ("NUMBER", 38, 0, "numeric(38,0)"),
        ("NUMBER", 18, 2, "numeric(18,2)"),
        ("NUMBER", None, None, "numeric(38,0)"),
        ("DECIMAL", 10, 4, "numeric(10,4)"),
        ("FLOAT", None, None, "double precision"),
        ("TIMESTAMP_NTZ", None, None, "timestamp without time zone"),
        ("TIMESTAMP_TZ", None, None, "timestamp with time zone"),
        ("TIMESTAMP_LTZ", None, None, "timestamp with time zone"),
        ("VARIANT", None, None, "jsonb"),
        ("OBJECT", None, None, "jsonb"),
        ("ARRAY", None, None, "jsonb"),
        ("BINARY", None, None, "bytea"),
        ("TEXT", None, None, "text"),
        ("VARCHAR", None, None, "text"),
        ("BOOLEAN", None, None, "boolean"),
        ("DATE", None, None, "date"),
        ("TIME", None, None, "time without time zone"),
    ],
)
def test_snowflake_types_map_exactly(data_type, precision, scale, expected):
    column = SourceColumn(name="C", data_type=data_type, precision=precision, scale=scale)
    assert postgres_type_for(column, table="t") == expected


def test_unsupported_types_name_the_column():
    with pytest.raises(SourceSchemaError, match="GEOGRAPHY") as raised:
        postgres_type_for(SourceColumn(name="SHAPE", data_type="GEOGRAPHY"), table="t")
    assert raised.value.column == "SHAPE"


def test_numbers_go_over_the_wire_as_decimals_never_floats():
    assert wire_type("numeric(38,0)") == pa.decimal128(38, 0)
    assert wire_type("numeric(40,2)") == pa.decimal256(40, 2)
    assert wire_type("jsonb") == pa.json_()
    assert wire_type("timestamp with time zone") == pa.timestamp("us", tz="UTC")
    assert wire_type("timestamp(3) without time zone") == pa.timestamp("us")
    assert wire_type("uuid") is None


@pytest.mark.parametrize(
    ("target", "desired", "expected"),
    [
        ("numeric(18,2)", "numeric(18,2)", True),
        ("numeric(38,4)", "numeric(18,2)", True),
        ("numeric(18,2)", "numeric(18,4)", False),
        ("numeric(10,2)", "numeric(12,2)", False),
        ("numeric", "numeric(38,10)", True),
        ("bigint", "numeric(18,0)", True),
        ("bigint", "numeric(38,0)", False),
        ("character varying", "text", True),
        ("character varying(10)", "text", False),
        ("timestamp with time zone", "timestamp without time zone", False),
    ],
)
def test_what_a_target_type_can_hold(target, desired, expected):
    assert holds(target, desired) is expected


@pytest.mark.parametrize(
    ("target", "desired", "expected"),
    [
        ("numeric(10,2)", "numeric(18,4)", "numeric(18,4)"),
        ("numeric(18,4)", "numeric(20,0)", "numeric(24,4)"),
        ("bigint", "numeric(38,2)", "numeric(38,2)"),
        ("character varying(10)", "text", "text"),
        ("real", "double precision", "double precision"),
        ("text", "numeric(10,2)", None),
        ("timestamp without time zone", "timestamp with time zone", None),
    ],
)
def test_the_lossless_common_type(target, desired, expected):
    assert widened(target, desired) == expected
