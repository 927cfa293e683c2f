"""Pydantic's errors in fdm's words: `must be true or false, got string 'yes'`."""

from __future__ import annotations

import difflib
from typing import Any

from syncconfig.schema.document import ALLOWED_KEYS, CHOICES
from syncconfig.schema.errors import describe, format_path

_UNION_TAGS = {"flag", "block"}


def pydantic_problem(error: Any) -> tuple[str, str]:
    """(path, message) for one pydantic error, in fdm's words."""
    loc: list[str | int] = []
    is_key = False
    for part in error["loc"]:
        if part == "[key]":
            is_key = True
        elif part in _UNION_TAGS and loc and loc[-1] in ("encryption", "compression"):
            continue  # the union branch pydantic tried is noise to a reader
        else:
            loc.append(part)
    kind, value, ctx = error["type"], error["input"], error.get("ctx") or {}
    got = describe(value)
    if kind == "missing":
        message = "is required"
    elif kind == "extra_forbidden":
        allowed = ALLOWED_KEYS.get(tuple(p for p in loc[:-1] if isinstance(p, str)), ())
        message = "unknown key" + did_you_mean(str(loc[-1]) if loc else "", allowed)
        message += f"; allowed keys: {', '.join(allowed)}" if allowed else ""
    elif kind == "string_type":
        message = f"must be a string, got {got}"
    elif kind == "bool_type":
        message = f"must be true or false, got {got}"
    elif kind == "int_type":
        message = f"must be an integer, got {got}"
    elif kind == "float_type":
        message = f"must be a number, got {got}"
    elif kind == "list_type":
        message = f"must be a list of strings, got {got}"
    elif kind in ("dict_type", "model_type"):
        message = f"must be a mapping, got {got}"
    elif kind == "literal_error":
        options = CHOICES.get(str(loc[-1]) if loc else "", ())
        message = f"must be one of: {', '.join(options)}; got {got}"
    elif kind == "greater_than_equal":
        message = f"must be at least {_number(ctx['ge'])}, got {value}"
    elif kind == "greater_than":
        message = f"must be more than {_number(ctx['gt'])}, got {value}"
    elif kind == "less_than_equal":
        message = f"must be at most {_number(ctx['le'])}, got {value}"
    elif kind == "flag_or_mapping":
        message = f"must be true, false or a mapping, got {got}"
    elif kind == "fdm":
        message = ctx["message"]
    else:
        message = error["msg"]
    if is_key:
        message = f"key {message}"
    return format_path(loc), message


def _number(limit: Any) -> str:
    """A limit as written in the docs: 1, not the 1.0 a float field makes of it."""
    return f"{limit:g}" if isinstance(limit, float) else str(limit)


def did_you_mean(key: str, allowed: tuple[str, ...]) -> str:
    """ "; did you mean 'x'?" for the allowed key closest to a misspelt one, or nothing when none is close."""
    close = difflib.get_close_matches(key.lower(), allowed, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
