"""Request body parsers that refuse what would hurt the server before it does.

A body is refused with 413 when its declared length is over the limit, before any of it is read, and reading
stops one byte past the limit when no length is declared (chunked). A JSON body nested deeper than
`MAX_DEPTH` is refused with 400 rather than exhausting Python's recursion limit further down.
"""

from __future__ import annotations

import io
from typing import Any

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.parsers import BaseParser
from rest_framework.parsers import JSONParser as DrfJSONParser

MAX_DEPTH = 32  # a table dict is 3 levels deep; nothing fdm accepts comes near this


class BodyTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"


def body_limit() -> int:
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2_621_440)


def read_limited(stream: Any, parser_context: Any, *, limit: int) -> bytes:
    """The body, at most `limit` bytes: refused from its Content-Length header when it declares more, and
    refused after reading `limit + 1` bytes when it does not declare its length."""
    request = (parser_context or {}).get("request")
    declared = request.META.get("CONTENT_LENGTH") if request is not None else None
    too_large = f"The request body is larger than the limit of {limit} bytes."
    try:
        if declared and int(declared) > limit:
            raise BodyTooLarge(too_large)
    except ValueError:
        raise exceptions.ParseError("The Content-Length header is not a number.") from None
    if stream is None:
        return b""
    body: bytes = stream.read(limit + 1)
    if len(body) > limit:
        raise BodyTooLarge(too_large)
    return body


def depth_of(value: Any) -> int:
    """How deeply lists and mappings nest in `value` (a scalar: 0), without recursion."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        pending.extend((child, depth + 1) for child in children)
    return deepest


class JSONParser(DrfJSONParser):
    """DRF's JSON parser with a size limit checked before reading and a nesting limit."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        body = read_limited(stream, parser_context, limit=body_limit())
        try:
            data = super().parse(io.BytesIO(body), media_type, parser_context)
        except RecursionError:
            data = None
            depth = MAX_DEPTH + 1
        else:
            depth = depth_of(data)
        if depth > MAX_DEPTH:
            raise exceptions.ParseError(f"The JSON body is nested more than {MAX_DEPTH} levels deep.")
        return data


class RawBodyParser(BaseParser):
    """Hands the raw body, at most `limit` bytes, to a service that parses it itself."""

    limit = 1024 * 1024

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> bytes:
        return read_limited(stream, parser_context, limit=self.limit)
