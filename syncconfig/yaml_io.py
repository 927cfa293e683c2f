"""Reading and writing the YAML form of the table configuration, and per-environment overlays.

Reading is deliberately narrow:
- only PyYAML's safe loader (no Python objects), subclassed to refuse aliases (`*name`): with them, a few lines
  can expand into gigabytes (the "billion laughs" document), and a configuration never needs them;
- YAML 1.2 scalars: `true`/`false` are booleans but `yes`, `no`, `on`, `off` stay strings, `010` is ten and
  `12:30` and `2024-01-31` are strings, so the schema reports a wrong type instead of YAML 1.1 guessing one;
- a key given twice in one mapping is an error (PyYAML would silently keep the last one);
- files over `MAX_DOCUMENT_BYTES` are refused before parsing.

Writing is stable: tables in name order, keys in a fixed order, defaults left out, strings quoted whenever a
YAML 1.1 or 1.2 reader could take them for something else.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import ScalarNode

from fdm.yaml_strict import CORE_RESOLVERS, StrictSafeLoader
from syncconfig.schema import ConfigError, describe, format_path
from syncconfig.schema.messages import did_you_mean

MAX_DOCUMENT_BYTES = 1024 * 1024
ENVIRONMENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
# `pipeline` holds the environment's pipeline settings, which fdm.pipeline_settings reads; tables ignore it.
OVERLAY_KEYS = ("defaults", "tables", "pipeline")
EXPORT_HEADER = "# fdm table configuration. Keys and defaults: docs/table-configuration.md\n"


class YamlError(Exception):
    """A document that cannot be read: not UTF-8, too large, not YAML, or using a refused feature."""

    def __init__(self, message: str, *, source: str | None = None, excerpt: str | None = None):
        self.message = message
        self.source = source
        self.excerpt = excerpt  # the text around a syntax error, with a caret under it
        super().__init__(f"{source}: {message}" if source else message)

    def as_config_error(self) -> ConfigError:
        return ConfigError(field="", message=self.message, source=self.source, excerpt=self.excerpt)


def parse(text: str | bytes, *, source: str | None = None) -> Any:
    """Parse one YAML document. Raises YamlError with the line and column of the problem."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise YamlError(f"is {len(raw)} bytes; the limit is {MAX_DOCUMENT_BYTES} bytes", source=source)
    try:
        decoded = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise YamlError(f"is not UTF-8 text (byte {exc.start})", source=source) from None
    try:
        return yaml.load(decoded, Loader=StrictSafeLoader)  # noqa: S506 - StrictSafeLoader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, decoded, source=source) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"invalid YAML: {exc}", source=source) from None


def _syntax_error(exc: yaml.MarkedYAMLError, text: str, *, source: str | None) -> YamlError:
    """The error with its line and column, and an excerpt of the text with a caret under the mistake.

    PyYAML often notices a mistake on the line after it (a key without its colon is only found to be one when
    the next line starts): its context mark points at where the trouble began, and the excerpt shows both.
    """
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    context = exc.context_mark if exc.context and exc.problem_mark else None
    if context is not None and exc.context == "while scanning a simple key":
        # The most common slip, a key without its colon: the mistake is on the key's own line.
        mark, problem = context, "this line has no ':' after its key (write key: value)"
        context = None
    elif (
        context is not None
        and mark is not None
        and (context.line, context.column) != (mark.line, mark.column)
    ):
        problem += f" ({exc.context} on line {context.line + 1}, column {context.column + 1})"
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    marks = [
        (m.line, m.column, label) for m, label in ((context, exc.context), (mark, "here")) if m is not None
    ]
    return YamlError(f"{where}{problem}", source=source, excerpt=_excerpt(text, marks) if marks else None)


def _excerpt(text: str, marks: list[tuple[int, int, str | None]]) -> str:
    """The lines from the one before the first mark to the last mark, numbered, each mark's line followed by a
    caret under its column."""
    lines = text.splitlines() or [""]
    first = max(min(line for line, _, _ in marks) - 1, 0)
    last = min(max(line for line, _, _ in marks), len(lines) - 1)
    width = len(str(last + 1))
    out = []
    for number in range(first, last + 1):
        out.append(f"{number + 1:>{width}} | {lines[number]}")
        for line, column, label in marks:
            if line == number:
                out.append(f"{'':>{width}} | {' ' * column}^ {label or ''}".rstrip())
    return "\n".join(out)


def read_file(path: str | Path, *, source: str | None = None) -> Any:
    """Parse a YAML file, refusing oversized files before reading them whole."""
    path = Path(path)
    label = source or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise YamlError(f"is {size} bytes; the limit is {MAX_DOCUMENT_BYTES} bytes", source=label)
        raw = path.read_bytes()
    except OSError as exc:
        raise YamlError(f"cannot be read: {exc.strerror}", source=label) from None
    return parse(raw, source=label)


# --- writing ----------------------------------------------------------------------------------------------


class _FlowMapping(dict):
    """A mapping written on one line: `{schema: public, table: fx_rates}`."""


class _FlowList(list):
    """A list written on one line: `[TXN_ID, POSTED_AT]`."""


class _Dumper(yaml.SafeDumper):
    """Quotes any string that a YAML 1.1 or 1.2 reader would take for another type."""


for _tag, _pattern, _first in CORE_RESOLVERS:
    _Dumper.add_implicit_resolver(_tag, _pattern, _first)


_UNICODE_LINE_BREAKS = frozenset("\x85\u2028\u2029")


def _represent_str(dumper: yaml.SafeDumper, value: str) -> ScalarNode:
    style = None
    if _UNICODE_LINE_BREAKS.intersection(value):
        # YAML folds these line breaks in plain, single-quoted and block scalars; only escapes keep them.
        style = '"'
    elif value.endswith("\n") and (len(value) == 1 or value[-2] == "\n"):
        # Trailing blank lines need a keep-chomping block (`|+`), which PyYAML ends with a document end
        # marker (`...`) that cannot stand inside the list of tables: quote instead.
        style = '"'
    elif "\n" in value:
        # Notes stay readable as a block; PyYAML falls back to quoting when a block cannot hold the text.
        style = "|"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(
    _FlowMapping, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v.items(), flow_style=True)
)
_Dumper.add_representer(
    _FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)


def _flow_style(table: Mapping[str, Any]) -> dict[str, Any]:
    """Short structures on one line, as the seed file writes them."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key in ("snowflake", "postgres"):
            out[key] = _FlowMapping(value)
        elif isinstance(value, list):
            out[key] = _FlowList(value)
        elif isinstance(value, Mapping) and key != "column_names":  # columns, encryption, compression
            out[key] = _FlowMapping({k: _FlowList(v) if isinstance(v, list) else v for k, v in value.items()})
        else:
            out[key] = value
    return out


def dump_tables(tables: Sequence[Mapping[str, Any]]) -> str:
    """The YAML document for canonical table dicts, with a blank line between tables."""
    if not tables:
        return EXPORT_HEADER + "tables: []\n"
    entries = []
    for table in tables:
        text = yaml.dump(
            [_flow_style(table)], Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110, indent=2
        )
        entries.append(textwrap.indent(text, "  ", predicate=lambda line: line.strip("\n") != ""))
    return EXPORT_HEADER + "tables:\n" + "\n".join(entries)


# --- environment overlays ---------------------------------------------------------------------------------


def merge_patch(base: Any, patch: Any) -> Any:
    """Deep merge as JSON Merge Patch (RFC 7386): mappings merge key by key, null removes a key, anything else
    (lists included) replaces."""
    if not isinstance(patch, Mapping):
        return patch
    merged = dict(base) if isinstance(base, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def overlay_path(config_dir: str | Path, env: str) -> Path:
    return Path(config_dir) / "environments" / f"{env}.yaml"


def load_overlay(env: str, config_dir: str | Path) -> tuple[Any, str]:
    """The parsed overlay for `env` and the label its errors carry. Raises YamlError when it is missing."""
    if not ENVIRONMENT_NAME.match(env):
        raise YamlError(f"environment name {env!r} must be lower-case letters, digits, - and _")
    path = overlay_path(config_dir, env)
    label = f"environments/{env}.yaml"
    if not path.is_file():
        raise YamlError(f"no overlay for environment {env!r}: {path} does not exist")
    return read_file(path, source=label), label


def apply_overlay(document: Any, overlay: Any, *, source: str) -> tuple[Any, list[ConfigError]]:
    """The document with the overlay merged into its tables, and the overlay's own problems.

    `defaults` merges into every table, then each overlay entry into the table of the same name. A document
    that is not a mapping with a list of tables is returned as it is: validating it reports why.
    """

    def error(field: str, message: str, *, index: int | None = None, table: str | None = None) -> ConfigError:
        return ConfigError(field=field, message=message, index=index, table=table, source=source)

    if overlay is None:
        return document, []
    if not isinstance(overlay, Mapping):
        return document, [
            error("", f"must be a mapping with defaults and/or tables, got {describe(overlay)}")
        ]
    errors = [
        error(
            format_path([str(key)]),
            f"unknown key{did_you_mean(str(key), OVERLAY_KEYS)}; allowed keys: {', '.join(OVERLAY_KEYS)}",
        )
        for key in overlay
        if key not in OVERLAY_KEYS
    ]
    defaults = overlay.get("defaults")
    defaults = {} if defaults is None else defaults  # `defaults:` with nothing under it
    if not isinstance(defaults, Mapping):
        errors.append(error("defaults", f"must be a mapping, got {describe(defaults)}"))
        defaults = {}
    elif "name" in defaults:
        errors.append(error("defaults.name", "a name cannot have a default"))
    entries = overlay.get("tables")
    entries = [] if entries is None else entries
    if not isinstance(entries, list):
        errors.append(error("tables", f"must be a list of tables, got {describe(entries)}"))
        entries = []

    base = document.get("tables") if isinstance(document, Mapping) else None
    known = {t.get("name") for t in base or () if isinstance(t, Mapping)} if isinstance(base, list) else set()
    patches: dict[str, Mapping[str, Any]] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            errors.append(error("", f"must be a mapping, got {describe(entry)}", index=index))
            continue
        name = entry.get("name")
        if not isinstance(name, str):
            errors.append(error("name", f"must be a string, got {describe(name)}", index=index))
        elif name in patches:
            errors.append(error("name", f"{name!r} appears more than once", index=index, table=name))
        elif isinstance(base, list) and name not in known:
            errors.append(
                error("name", f"no table named {name!r} in the configuration", index=index, table=name)
            )
        else:
            patches[name] = entry
    if errors or not isinstance(base, list):
        return document, errors

    merged_tables = []
    for table in base:
        if isinstance(table, Mapping):
            table = merge_patch(table, defaults)
            table = merge_patch(table, patches.get(table.get("name"), {}))
        merged_tables.append(table)
    return {**document, "tables": merged_tables}, []
