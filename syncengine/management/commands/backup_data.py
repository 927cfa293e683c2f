"""`python manage.py backup_data [NAME ...] --out DIR [--encrypt]`: archive synced tables as they are stored."""

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
        "Write a verified archive of each named synced table (all when none are named) into DIR/<table>/: its "
        "rows exactly as stored (encrypted values stay ciphertext), zstd-compressed, its protection catalog and "
        "compression dictionaries, and a manifest with the schema, row count, checksums, key ids, watermark "
        "and each file's SHA-256. Restore with `restore_data DIR`."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("names", nargs="*", metavar="NAME", help="tables to back up (default: all)")
        parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="directory to write into")
        parser.add_argument(
            "--encrypt",
            action="store_true",
            help="seal the files with the primary key of FDM_ENCRYPTION_KEYS (a restore needs the keyring)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = backups.tables_backup(
                names=options["names"], out_dir=options["out"], encrypt=options["encrypt"]
            )
        except ArchiveError as exc:
            raise CommandError(str(exc)) from None
        for entry in report.tables:
            self.stdout.write(
                f"{entry.table_name}: {entry.rows} rows, {entry.bytes} bytes in {entry.seconds:.1f} s -> {entry.directory}"
            )
        for name in report.skipped:
            self.stdout.write(f"{name}: skipped, its target table does not exist (never synced)")
