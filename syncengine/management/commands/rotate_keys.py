"""`python manage.py rotate_keys [--table NAME]`: re-encrypt stored values with the primary key, in the current
format version."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from syncconfig.choices import EncryptionMode
from syncconfig.models import TableConfig
from syncconfig.selectors import table_get, table_list
from syncengine import connections, protected_data
from syncengine.pipeline.errors import PipelineError
from syncengine.pipeline.protection.crypto import FORMAT_VERSION
from syncengine.pipeline.protection.keyring import KeyringError
from syncengine.pipeline.protection.rotation import DEFAULT_PAGES_PER_BATCH


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored value that is not on the keyring's primary key (the first key of "
        "FDM_ENCRYPTION_KEYS) or not in the current format version, and recompute blind indexes, in short "
        "transactions that a sync can run between. Safe to interrupt and run again: it carries on where values "
        "are still on an older key or format. Tables stay readable and searchable throughout. Remove an old key "
        "from the keyring only once this reports no value uses it."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--table", help="only this table (default: every table configured with encryption)"
        )
        parser.add_argument(
            "--pages",
            type=int,
            default=DEFAULT_PAGES_PER_BATCH,
            help=f"table pages (8 kB) re-encrypted per transaction (default {DEFAULT_PAGES_PER_BATCH})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["pages"] <= 0:
            raise CommandError("--pages must be positive")
        try:
            keyring = connections.keyring(required=True)
        except KeyringError as exc:
            raise CommandError(str(exc)) from None
        assert keyring is not None
        if options["table"]:
            try:
                tables = [table_get(name=options["table"])]
            except TableConfig.DoesNotExist:
                raise CommandError(f"no table named {options['table']!r}") from None
        else:
            tables = [table for table in table_list() if table.encryption_mode != EncryptionMode.OFF]
        stream: TextIO = self.stdout._out  # type: ignore[assignment]
        console = Console(file=stream, highlight=False, soft_wrap=True)
        console.print(f"Primary key: {keyring.primary}")
        failures = 0
        for table in tables:
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as progress:
                bar = progress.add_task(table.name, total=None)
                try:
                    result = protected_data.table_keys_rotate(
                        table=table,
                        keyring=keyring,
                        pages_per_batch=options["pages"],
                        on_batch=lambda done, total, bar=bar: progress.update(
                            bar, completed=done, total=total
                        ),
                    )
                except PipelineError as exc:
                    failures += 1
                    self.stderr.write(f"{table.name}: {exc}")
                    continue
            usage = result.usage
            if usage is None or usage.total == 0:
                console.print(f"{table.name}: nothing encrypted yet")
                continue
            spread = "; ".join(
                f"{column}: " + ", ".join(f"{key_id} {count}" for key_id, count in counts.items())
                for column, counts in usage.columns.items()
            )
            older = f"; {usage.old_format} in an older format" if usage.old_format else ""
            console.print(
                f"{table.name}: {result.values_rotated} value(s) re-encrypted in {result.batches} batch(es), "
                f"{result.seconds:.1f} s; {usage.percent_on_primary}% on the primary key {keyring.primary} and "
                f"the current format (v{FORMAT_VERSION}) ({spread}{older})"
            )
            if usage.remaining:
                failures += 1
                self.stderr.write(
                    f"{table.name}: {usage.remaining} value(s) still on older keys or formats; run again"
                )
        if failures:
            raise CommandError(f"{failures} table(s) not fully rotated")
