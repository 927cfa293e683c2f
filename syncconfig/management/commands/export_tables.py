"""`python manage.py export_tables [PATH]`"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from fdm.commands import SkipsKeyringCheck
from syncconfig import selectors, services


class Command(SkipsKeyringCheck):
    help = (
        "Write the stored table configuration as YAML (the format import_tables reads; see "
        "docs/table-configuration.md): to PATH, or to standard output when PATH is omitted. Importing the output "
        "again changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "path", metavar="PATH", nargs="?", help="file to write; standard output when omitted"
        )
        parser.add_argument(
            "--table",
            metavar="NAME",
            action="append",
            dest="names",
            help="export only this table (repeat for several)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        names: list[str] | None = options["names"]
        if names:
            missing = sorted(
                set(names) - set(selectors.table_list(names=names).values_list("name", flat=True))
            )
            if missing:
                raise CommandError(f"no table named {', '.join(repr(name) for name in missing)}")
        text = services.tables_export(names=names)
        path: str | None = options["path"]
        if not path:
            self.stdout.write(text, ending="")
            return
        try:
            _write_atomically(Path(path), text)
        except OSError as exc:
            raise CommandError(f"{path}: cannot write: {exc.strerror}") from None
        count = selectors.table_list(names=names).count()
        self.stdout.write(f"Wrote {count} table{'s' if count != 1 else ''} to {path}")


def _write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file next to `path`, then rename: a reader never sees half a file."""
    handle, temporary = tempfile.mkstemp(
        dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}."
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
