"""How configuration problems are located and worded."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from syncengine.pipeline.identifiers import is_plain


@dataclass(frozen=True)
class ConfigError:
    """One problem with a configuration: where it is and what is wrong.

    `field` is the path of the key inside the table (`sync_mode`, `encryption.searchable[0]`), or inside the
    document for problems that belong to no table. `index` is the table's position in the document's `tables`
    list and `table` its name, when known. `source` names the file when more than one file is involved.
    `excerpt` is the document's text around a syntax error, with a caret under the mistake.
    """

    field: str
    message: str
    table: str | None = None
    index: int | None = None
    source: str | None = None
    excerpt: str | None = None

    @property
    def location(self) -> str:
        base = ""
        if self.index is not None:
            base = f"tables[{self.index}]" + (f" {self.table}" if self.table else "")
        elif self.table:
            base = self.table
        if self.field:
            base = f"{base}.{self.field}" if base else self.field
        if self.source:
            base = f"{self.source}: {base}" if base else self.source
        return base

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


def describe(value: Any) -> str:
    """A value as an error message shows it: its YAML type, and the value itself when it is short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean true" if value else "boolean false"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"string {shown!r}"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def format_path(parts: Iterable[str | int]) -> str:
    """`('encryption', 'columns', 0)` -> `encryption.columns[0]`; keys that are not plain names are quoted."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif is_plain(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out
