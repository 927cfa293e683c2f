"""Small typed helpers for reading settings from the environment, and the one rule for secrets in files.

Every setting fdm reads from the environment, Django's and the engine's alike, goes through `env_value`:

1. `NAME`, stripped of surrounding whitespace, when it is set and not empty;
2. otherwise the contents of the file that `NAME_FILE` names (`/run/secrets/name`), stripped;
3. otherwise nothing, and the caller's default applies.

A value or a file that holds only whitespace is an error, as is a file that cannot be read: a blank secret is
a mistake (a volume that did not mount, a variable left empty by a template), never a choice. `NAME=` (empty)
still counts as unset, as shells and container runtimes write it. Errors name the setting, never its value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import overload


class ConfigurationError(RuntimeError):
    """A setting from the environment is missing or malformed."""


@dataclass(frozen=True)
class EnvValue:
    """A setting's text and where it came from: `NAME`, or `NAME_FILE (path)` when it was read from a file."""

    text: str
    source: str


def env_value(name: str, *, environ: Mapping[str, str] | None = None) -> EnvValue | None:
    """The setting `name` by the rule in this module's docstring; None when it is not set."""
    environ = os.environ if environ is None else environ
    raw = environ.get(name)
    if raw:
        if not raw.strip():
            raise ConfigurationError(f"{name} is blank; unset it or give it a value")
        return EnvValue(raw.strip(), name)
    path = environ.get(f"{name}_FILE")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read().strip()
    except OSError as exc:
        raise ConfigurationError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
    if not text:
        raise ConfigurationError(f"{name}_FILE: {path} is empty")
    return EnvValue(text, f"{name}_FILE ({path})")


@overload
def env_str(name: str, *, environ: Mapping[str, str] | None = None) -> str | None: ...
@overload
def env_str(name: str, default: str, *, environ: Mapping[str, str] | None = None) -> str: ...
@overload
def env_str(name: str, default: str | None, *, environ: Mapping[str, str] | None = None) -> str | None: ...
def env_str(name: str, default: str | None = None, *, environ: Mapping[str, str] | None = None) -> str | None:
    value = env_value(name, environ=environ)
    return value.text if value is not None else default


def env_bool(name: str, default: bool = False) -> bool:
    value = env_str(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{name}: expected true or false, got {value!r}")


def env_int(name: str, default: int) -> int:
    value = env_str(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigurationError(f"{name}: expected an integer, got {value!r}") from None


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    value = env_str(name)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]
