"""OpenAPI schema helpers: the table's schema from the shared pydantic model, and the error responses that
every operation can return.

The table schema is generated from `syncconfig.schema.TableDocument`, the model that validates YAML, admin and
API alike, so the documented shape cannot drift from the accepted one. Rules between keys (an incremental
table needs an incremental column, ...) cannot be expressed in JSON Schema; they come back as 400.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from drf_spectacular.utils import OpenApiResponse

from syncconfig import schema as table_schema

TABLE_COMPONENT = "Table"
_COMPONENT_NAMES = {
    "TableDocument": TABLE_COMPONENT,
    "SnowflakeSource": "TableSnowflakeSource",
    "PostgresTarget": "TablePostgresTarget",
    "ColumnSelection": "TableColumnSelection",
    "EncryptionBlock": "TableEncryptionBlock",
    "CompressionBlock": "TableCompressionBlock",
}
# Status codes any API operation may answer besides its own, with the error body.
COMMON_ERRORS = {
    "400": "Bad input: the details name each field.",
    "401": "No credentials, or an invalid, revoked or expired API key.",
    "403": "The caller's role does not allow this.",
    "404": "No such object.",
    "405": "Method not allowed.",
    "406": "The Accept header asks for a format the endpoint cannot produce.",
    "415": "Unsupported request content type.",
    "429": "Too many requests with this API key; retry after the Retry-After header's seconds.",
}
ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
ERROR_BODY = {
    "type": "object",
    "description": "The body of every error response (docs/api.md, Errors).",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {
                    "type": "string",
                    "description": "validation_error, not_authenticated, not_found, ...",
                },
                "message": {"type": "string"},
                "details": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["field", "message"],
                        "properties": {
                            "field": {"type": "string", "description": "Key path as the YAML names it."},
                            "message": {"type": "string"},
                        },
                    },
                },
            },
        }
    },
}


def error_response(description: str) -> OpenApiResponse:
    """An OpenAPI response with the error body (for extend_schema's `responses`)."""
    return OpenApiResponse(response=ERROR_REF, description=description)


_UNAUTHENTICATED_PATHS = ("/health/live",)


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
    components[TABLE_COMPONENT] = schema
    return components


TABLE_REF = {"$ref": f"#/components/schemas/{TABLE_COMPONENT}"}


def paginated(item: dict[str, Any]) -> dict[str, Any]:
    """The schema of one page of a list of `item`."""
    return {
        "type": "object",
        "required": ["count", "results"],
        "properties": {
            "count": {"type": "integer"},
            "next": {"type": ["string", "null"], "format": "uri"},
            "previous": {"type": ["string", "null"], "format": "uri"},
            "results": {"type": "array", "items": item},
        },
    }


def postprocess(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular hook: add the table components, and the common error responses to every operation."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(table_components())
    schemas["ErrorBody"] = ERROR_BODY
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in {"get", "put", "patch", "post", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            for code, description in COMMON_ERRORS.items():
                if path in _UNAUTHENTICATED_PATHS and code in {"401", "403"}:
                    continue
                responses.setdefault(
                    code, {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}
                )
    return result
