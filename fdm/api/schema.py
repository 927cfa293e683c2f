"""OpenAPI schema helpers: the error responses that every operation can return, and the shape of a page.

Apps add their own components with hooks of their own, listed beside `postprocess` in
SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"] (the table's schema: `syncconfig.api.openapi`).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse

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
    """drf-spectacular hook: add the error body, and the common error responses to every operation."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
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
