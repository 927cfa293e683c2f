"""`python manage.py decrypt TABLE --user NAME [--where COLUMN=VALUE ...]`: decrypted rows, audited."""

from __future__ import annotations

import argparse
import base64
import csv
import json
import socket
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from fdm.commands import os_account
from syncconfig.models import TableConfig
from syncconfig.selectors import table_get
from syncengine import protected_data
from syncengine.pipeline.errors import PipelineError
from syncengine.pipeline.protection.reader import MAX_PAGE_SIZE

# A cell a spreadsheet would run as a formula (CSV injection, OWASP): written with a leading apostrophe.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class Command(BaseCommand):
    help = (
        "Print a table's rows with encrypted columns decrypted, for an operator who holds the permission "
        "syncengine.read_decrypted. Every call is recorded (who, which table and columns, when). Filters are "
        "exact matches; an encrypted column can be filtered on when it is searchable (blind index)."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("table", help="the table's name in fdm")
        parser.add_argument("--user", required=True, help="the fdm user the read is made (and recorded) as")
        parser.add_argument(
            "--where",
            action="append",
            default=[],
            metavar="COLUMN=VALUE",
            help="exact-match filter (repeatable)",
        )
        parser.add_argument("--limit", type=int, default=100, help=f"rows to print (1-{MAX_PAGE_SIZE * 10})")
        parser.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            table = table_get(name=options["table"])
        except TableConfig.DoesNotExist:
            raise CommandError(f"no table named {options['table']!r}") from None
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"no user named {options['user']!r}")
        filters: dict[str, str] = {}
        for item in options["where"]:
            column, separator, value = item.partition("=")
            if not separator or not column:
                raise CommandError(f"--where {item!r}: expected COLUMN=VALUE")
            filters[column] = value
        wanted = options["limit"]
        if not 1 <= wanted <= MAX_PAGE_SIZE * 10:
            raise CommandError(f"--limit must be between 1 and {MAX_PAGE_SIZE * 10}")

        writer: Any = None
        after = None
        printed = 0
        while printed < wanted:
            try:
                page = protected_data.table_rows_read(
                    table=table,
                    user=user,
                    decrypt=True,
                    filters=filters,
                    after=after,
                    limit=min(MAX_PAGE_SIZE, wanted - printed),
                    via="command",
                    # The name given is not authenticated here: the OS account that ran the command is recorded too.
                    client=f"{os_account()}@{socket.gethostname()}",
                )
            except PermissionDenied as exc:
                raise CommandError(f"{options['user']}: {exc}") from None
            except PipelineError as exc:
                raise CommandError(str(exc)) from None
            if options["format"] == "csv" and writer is None:
                writer = csv.DictWriter(self.stdout, fieldnames=page.columns, lineterminator="\n")
                writer.writerow({name: _csv_cell(name) for name in page.columns})  # names are cells too
            for row in page.rows:
                plain = {name: _plain(value) for name, value in row.items()}
                if writer is not None:
                    writer.writerow({k: _csv_cell(v) for k, v in plain.items()})
                else:
                    self.stdout.write(json.dumps(plain, ensure_ascii=False))
            printed += len(page.rows)
            if page.next_after is None:
                break
            after = page.next_after


def _plain(value: Any) -> Any:
    """JSON-friendly: decimals and times as text, bytes as base64."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def _csv_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text: JSON for documents, formulas neutralised; numbers as they are."""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        try:
            Decimal(value)
        except ArithmeticError:
            return "'" + value
    return value
