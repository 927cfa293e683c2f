"""Logging for every process: the fields a line is bound to (`log_context`), and the formatters.

`FDM_LOG_FORMAT=json` writes one JSON object per line (python-json-logger): `time` (ISO 8601, UTC), `level`, `logger`,
`message`, the fields of the surrounding `log_context` (a worker's `run_id` and `table`), and any `extra`
fields (the request log's `method`, `path`, `status`, ...). The default, `text`, writes the same as one line of
text with the bound fields at its end. Secrets are removed by a filter the settings add to the handler.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

_bound: ContextVar[dict[str, Any]] = ContextVar("fdm_log_context", default={})  # noqa: B039 - never mutated

# Set on every record by LogContextFilter for the text format; left out of JSON, which carries the fields.
TEXT_CONTEXT_ATTR = "log_context"
JSON_FIELDS = "%(levelname)s %(name)s %(message)s"
JSON_RENAMES = {"levelname": "level", "name": "logger"}
STANDARD_ATTRS = frozenset({*RESERVED_ATTRS, TEXT_CONTEXT_ATTR, "taskName"})


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Bind `fields` to every log line written in this block (in this thread or task), on top of those an
    outer block bound."""
    token = _bound.set({**_bound.get(), **{key: value for key, value in fields.items() if value is not None}})
    try:
        yield
    finally:
        _bound.reset(token)


class LogContextFilter(logging.Filter):
    """Adds the bound fields to the record (for JSON) and as ` key=value ...` (for text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _bound.get()
        for key, value in fields.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        setattr(record, TEXT_CONTEXT_ATTR, "".join(f" {key}={value}" for key, value in fields.items()))
        return True


def json_formatter() -> JsonFormatter:
    return JsonFormatter(
        JSON_FIELDS,
        rename_fields=JSON_RENAMES,
        reserved_attrs=sorted(STANDARD_ATTRS),
        timestamp="time",  # ISO 8601 in UTC
        json_ensure_ascii=False,
    )


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a record carries beyond logging's own (`extra=...`, bound fields)."""
    return {key: value for key, value in record.__dict__.items() if key not in STANDARD_ATTRS}
