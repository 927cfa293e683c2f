"""`python manage.py restore_data DIR [--table NAME] [--into SCHEMA]`: restore tables from `backup_data`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from fdm.commands import SkipsKeyringCheck
from syncengine import backups
from syncengine.pipeline.archive.files import ArchiveError


class Command(SkipsKeyringCheck):
    help = (
        "Restore tables archived by `backup_data`. Every file's SHA-256 is checked first; each table is then "
        "restored into a new table, its row count and checksums are compared with the manifest, and only then "
        "does it replace the table (with its protection catalog, dictionaries and watermark), in one "
        "transaction. A tampered or truncated archive is refused and the table is left as it was."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "directory", type=Path, metavar="DIR", help="a backup, or one table's archive in it"
        )
        parser.add_argument("--table", metavar="NAME", help="only this table")
        parser.add_argument(
            "--into",
            metavar="SCHEMA",
            help="restore into this schema (created if needed) instead of replacing the table; the watermark "
            "is left alone",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            outcomes = backups.archive_restore(
                path=options["directory"], table=options["table"], into=options["into"]
            )
        except ArchiveError as exc:
            raise CommandError(str(exc)) from None
        for outcome in outcomes:
            self.stdout.write(
                f"{outcome.table_name}: restored {outcome.rows} rows into {outcome.relation} in {outcome.seconds:.1f} s, "
                "checksums verified"
            )
