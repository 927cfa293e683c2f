"""`python manage.py import_tables PATH [--env ENV] [--dry-run] [--prune]`"""

from __future__ import annotations

import textwrap
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from fdm.commands import SkipsKeyringCheck
from syncconfig import services, yaml_io
from syncconfig.reporting import import_summary_lines
from syncconfig.source_checks import SourceCheckUnavailable


class Command(SkipsKeyringCheck):
    help = (
        "Make the stored table configuration match a YAML file (format: docs/table-configuration.md). "
        "The import is atomic: if any table has a problem, nothing changes and every problem is printed, one "
        "per line, as 'tables[INDEX] NAME.KEY: message'. Exit status: 0 on success, 1 on any problem."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", metavar="PATH", help="YAML file to import, e.g. config/tables.yaml")
        parser.add_argument(
            "--env",
            metavar="ENV",
            help="merge the overlay config/environments/ENV.yaml (dev, staging, prod) into the file before "
            "validating; defaults to the FDM_ENV setting, when set",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="validate and print what would be created, updated (with the changed keys) and deleted, "
            "without changing anything",
        )
        parser.add_argument(
            "--check-source",
            action="store_true",
            help="also check every table against its Snowflake source (the table and every named column exist, "
            "types load, the key is unique in a sample); a problem there stops the import like any other",
        )
        parser.add_argument(
            "--prune",
            action="store_true",
            help="delete stored tables that the file does not list (without it they are left alone)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: str = options["path"]
        env: str | None = options["env"] or settings.FDM_ENV or None
        try:
            document = yaml_io.read_file(path, source=path)
        except yaml_io.YamlError as exc:
            excerpt = f"\n{textwrap.indent(exc.excerpt, '    ')}" if exc.excerpt else ""
            raise CommandError(f"{exc}{excerpt}") from None
        try:
            result = services.tables_import(
                document=document,
                env=env,
                dry_run=options["dry_run"],
                prune=options["prune"],
                source=path,
                via="import_tables",
                check_source=options["check_source"],
            )
        except SourceCheckUnavailable as exc:
            raise CommandError(
                f"cannot check {path} against the source: {exc}; nothing was changed"
            ) from None
        if not result.ok:
            for error in result.errors:
                self.stderr.write(str(error))
                if error.excerpt:
                    self.stderr.write(textwrap.indent(error.excerpt, "    "))
            count = len(result.errors)
            raise CommandError(f"{count} problem{'s' if count != 1 else ''} in {path}; nothing was changed")
        for line in import_summary_lines(result, source=path):
            self.stdout.write(line)
