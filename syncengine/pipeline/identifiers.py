"""Identifier rules shared by configuration validation and SQL generation.

Names follow Snowflake's own rules: a plain name (letters, digits, `_`, `$`, not starting with a digit or `$`)
is case-insensitive and stands for its upper-case form in Snowflake; any other name is matched exactly.
Every identifier that reaches SQL is quoted, so no name can smuggle SQL in.
"""

from __future__ import annotations

import re

PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
MAX_IDENTIFIER_LENGTH = 255  # Snowflake's limit; PostgreSQL's (63 bytes) is checked for target names
MAX_POSTGRES_IDENTIFIER_BYTES = 63


def is_plain(name: str) -> bool:
    return bool(PLAIN_NAME.match(name))


def identifier_problem(name: object, *, postgres: bool = False) -> str | None:
    """Why `name` cannot be used as an identifier, or None when it can."""
    if not isinstance(name, str):
        return f"must be a string, got {type(name).__name__}"
    if name == "" or name.strip() == "":
        return "must not be empty"
    if "\x00" in name:
        return "must not contain a NUL character"
    if any(ord(ch) < 32 for ch in name):
        return "must not contain control characters"
    if postgres and len(name.encode("utf-8")) > MAX_POSTGRES_IDENTIFIER_BYTES:
        return f"is longer than PostgreSQL's limit of {MAX_POSTGRES_IDENTIFIER_BYTES} bytes"
    if len(name) > MAX_IDENTIFIER_LENGTH:
        return f"is longer than {MAX_IDENTIFIER_LENGTH} characters"
    return None


def snowflake_name(configured: str) -> str:
    """The name Snowflake stores for a configured name: plain names fold to upper case."""
    return configured.upper() if is_plain(configured) else configured


def postgres_default_name(source_name: str) -> str:
    """Target column name for a Snowflake column: upper-case plain names become lower case."""
    return (
        source_name.lower() if is_plain(source_name) and source_name == source_name.upper() else source_name
    )


def matches(configured: str, actual: str) -> bool:
    """Does a configured name refer to an actual (as stored) Snowflake name?"""
    if is_plain(configured):
        return configured.upper() == actual.upper()
    return configured == actual


def find(configured: str, actual_names: list[str] | tuple[str, ...]) -> str | None:
    """The actual name a configured name refers to, or None."""
    for actual in actual_names:
        if matches(configured, actual):
            return actual
    return None


def quote_snowflake(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_postgres(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
