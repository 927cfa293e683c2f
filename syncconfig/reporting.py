"""Plain-text summaries of imports, shared by the command line and the admin's messages."""

from __future__ import annotations

import json
from typing import Any

from syncconfig.services import ImportResult


def show_value(value: Any) -> str:
    """A configuration value on one line, as JSON (unambiguous: "1" and 1 look different)."""
    return json.dumps(value, ensure_ascii=False)


def change_text(changes: dict[str, tuple[Any, Any]]) -> str:
    return "; ".join(f"{key}: {show_value(old)} -> {show_value(new)}" for key, (old, new) in changes.items())


def import_summary_lines(result: ImportResult, *, source: str) -> list[str]:
    """What an import did (or, in a dry run, would do), one line per table that changes."""
    verb = {"created": "would create", "updated": "would update", "deleted": "would delete"}
    if not result.dry_run:
        verb = {"created": "created", "updated": "updated", "deleted": "deleted"}
    env = f" with environment {result.env}" if result.env else ""
    counts = (
        f"{len(result.created)} created, {len(result.updated)} updated, {len(result.deleted)} deleted, "
        f"{len(result.unchanged)} unchanged"
    )
    head = f"Dry run of {source}{env}: {counts}; nothing was changed." if result.dry_run else None
    lines = [head or f"Imported {source}{env}: {counts}."]
    lines += [f"  + {verb['created']} {name}" for name in result.created]
    lines += [
        f"  ~ {verb['updated']} {change.name}: {change_text(change.changes)}" for change in result.updated
    ]
    lines += [f"  - {verb['deleted']} {name}" for name in result.deleted]
    return lines
