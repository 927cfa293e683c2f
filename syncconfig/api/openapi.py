"""The table's OpenAPI schema, generated from the shared pydantic model.

The schema comes from `syncconfig.schema.TableDocument`, the model that validates YAML, admin and API alike, so
the documented shape cannot drift from the accepted one. Rules between keys (an incremental table needs an
incremental column, ...) cannot be expressed in JSON Schema; they come back as 400.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from syncconfig import schema as table_schema

TABLE_COMPONENT = "Table"
_COMPONENT_NAMES = {
    "TableDocument": TABLE_COMPONENT,
    "SnowflakeSource": "TableSnowflakeSource",
    "PostgresTarget": "TablePostgresTarget",
    "ColumnSelection": "TableColumnSelection",
    "EncryptionBlock": "TableEncryptionBlock",
    "CompressionBlock": "TableCompressionBlock",
    "DeletesBlock": "TableDeletesBlock",
    "ReconcileBlock": "TableReconcileBlock",
    "ParallelBlock": "TableParallelBlock",
}
TABLE_REF = {"$ref": f"#/components/schemas/{TABLE_COMPONENT}"}


@cache
def table_components() -> dict[str, dict[str, Any]]:
    """The table's JSON Schema and its nested parts, as OpenAPI components."""
    raw = table_schema.TableDocument.model_json_schema(
        by_alias=True, ref_template="#/components/schemas/{model}"
    )
    text = json.dumps(raw)
    for model, component in _COMPONENT_NAMES.items():
        text = text.replace(f'"#/components/schemas/{model}"', f'"#/components/schemas/{component}"')
    schema = json.loads(text)
    definitions = schema.pop("$defs", {})
    # The name's rules are a validator in the model; stating them helps clients and generated examples.
    schema["properties"]["name"].update(
        {"pattern": table_schema.TABLE_NAME_PATTERN.pattern, "maxLength": table_schema.MAX_TABLE_NAME_LENGTH}
    )
    components = {_COMPONENT_NAMES[name]: definition for name, definition in definitions.items()}
    components["TableParallelBlock"]["properties"]["slices"].update(
        {"minimum": table_schema.MIN_SLICES, "maximum": table_schema.MAX_SLICES}
    )
    components[TABLE_COMPONENT] = schema
    return components


def add_table_components(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular hook: the table's components, which TABLE_REF points to."""
    result.setdefault("components", {}).setdefault("schemas", {}).update(table_components())
    return result
