"""`python manage.py reconcile NAME [--deep] [--limit N]`: compare a synced table with its source, in this
process, and print what differs."""

from __future__ import annotations

import argparse

from django.core.management.base import CommandError

from fdm.commands import WithExitStatus
from syncconfig.models import TableConfig
from syncconfig.selectors import table_get, table_list
from syncengine import reconciliations
from syncengine.choices import ReconciliationStatus, RunTrigger
from syncengine.models import Reconciliation

EXIT_EQUAL = 0
EXIT_DIFFERENT = 1
EXIT_UNKNOWN_TABLE = 2
EXIT_FAILED = 3


class Command(WithExitStatus):
    help = (
        "Compare a synced table with its Snowflake source, in this process. Without --deep: row counts and "
        "exact sums of the numeric columns; with --deep: every row, by segment hashes bisected down to the "
        "differing keys (each printed with the columns that differ). The reconciliation is recorded with "
        "trigger 'command'."
    )
    epilog = (
        "exit status: 0 equal; 1 differences found; 2 no table has that name; 3 the check could not run (the "
        "error is printed on stderr)."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name", help="the table's name, as in config/tables.yaml or the admin")
        parser.add_argument("--deep", action="store_true", help="compare every row, not counts and sums")
        parser.add_argument(
            "--limit", type=int, default=100, help="print at most this many differing keys (default 100)"
        )

    def handle(self, *args, **options) -> None:
        name, limit = options["name"], options["limit"]
        if limit < 1:
            raise CommandError("--limit must be at least 1")
        try:
            table = table_get(name=name)
        except TableConfig.DoesNotExist:
            names = [t.name for t in table_list()]
            known = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
            raise CommandError(
                f"no table named {name!r} (known tables: {known or 'none configured'})",
                returncode=EXIT_UNKNOWN_TABLE,
            ) from None
        created = reconciliations.reconciliation_create(
            table=table, trigger=RunTrigger.COMMAND, deep=options["deep"]
        )
        done = reconciliations.reconciliation_execute(reconciliation_id=created.pk)
        if done.status == ReconciliationStatus.FAILED:
            raise CommandError(
                f"{table.name}: reconciliation failed: {done.error_message}", returncode=EXIT_FAILED
            )
        self._print(done, limit)
        if done.status == ReconciliationStatus.DIFFERENT:
            raise SystemExit(EXIT_DIFFERENT)

    def _print(self, done: Reconciliation, limit: int) -> None:
        kind = "deep" if done.deep else "light"
        self.stdout.write(
            f"{done.table_name}: {kind} reconciliation #{done.pk} {done.status}: {done.rows_compared} rows in "
            f"Snowflake, {done.rows_target} in PostgreSQL, {done.segments_checked} segments, "
            f"{done.differences_found} differences"
        )
        key = done.details.get("key") or []
        for difference in done.differences[:limit]:
            if "check" in difference:
                sums = done.details.get("sums", {}).get(difference["check"], done.details.get("rows"))
                self.stdout.write(f"  {difference['check']}: {sums}")
                continue
            shown = ", ".join(f"{name}={value}" for name, value in zip(key, difference["key"], strict=False))
            columns = f" ({', '.join(difference['columns'])})" if difference["columns"] else ""
            self.stdout.write(f"  {shown}: {difference['kind']}{columns}")
        if done.differences_found > min(limit, len(done.differences)):
            self.stdout.write(f"  ... and {done.differences_found - min(limit, len(done.differences))} more")
