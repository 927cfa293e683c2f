"""`python manage.py sync_table NAME [--full-refresh | --from VALUE [--to VALUE]] [--allow-deletes]`: one sync in the
foreground, with progress and a summary."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import TextIO

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from rich.console import Console
from rich.progress import Progress, ProgressColumn, SpinnerColumn, Task, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from fdm.commands import WithExitStatus
from syncconfig.models import TableConfig
from syncconfig.selectors import table_get, table_list
from syncengine import services
from syncengine.choices import RunStatus, RunTrigger
from syncengine.log_context import run_log_context
from syncengine.models import SyncRun
from syncengine.recorder import DATABASE_ERRORS, OutcomeNotRecorded
from syncengine.run_options import RunOptions

EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_UNKNOWN_TABLE = 2
EXIT_SKIPPED = 3


class Command(WithExitStatus):
    help = (
        "Sync one table now, in this process (not through the task queue), showing progress and then a "
        "summary of rows, bytes, stage durations, watermark and schema drift. The run is recorded like any "
        "other, with trigger 'command'. A transient failure is not retried in the background: run the "
        "command again."
    )
    epilog = (
        "exit status: 0 the run succeeded; 1 it failed (the error is printed on stderr; a tripped delete "
        "guard is a failure that deleted nothing) or its options were refused; 2 no table has that name; 3 it "
        "was skipped because another run holds the table."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name", help="the table's name, as in config/tables.yaml or the admin")
        parser.add_argument(
            "--full-refresh",
            action="store_true",
            help="reload the whole table, ignoring the watermark of an incremental table",
        )
        parser.add_argument(
            "--from",
            dest="backfill_from",
            metavar="VALUE",
            default="",
            help="backfill: re-extract the rows whose incremental column is at or after VALUE and merge them; "
            "the watermark never moves back (trigger 'backfill')",
        )
        parser.add_argument(
            "--to",
            dest="backfill_to",
            metavar="VALUE",
            default="",
            help="with --from: up to VALUE, inclusive (default: the newest row)",
        )
        parser.add_argument(
            "--allow-deletes",
            action="store_true",
            help="let this run delete more rows than the table's delete guard (deletes.max_ratio) allows",
        )

    def handle(self, *args, **options) -> None:
        name = options["name"]
        try:
            table = table_get(name=name)
        except TableConfig.DoesNotExist:
            names = [t.name for t in table_list()]
            known = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
            raise CommandError(
                f"no table named {name!r} (known tables: {known or 'none configured'})",
                returncode=EXIT_UNKNOWN_TABLE,
            ) from None

        # Rich writes to the stream under Django's wrapper, which would add a line ending to each write. The
        # stubs type every attribute that the wrapper forwards to its stream as a callable.
        stream: TextIO = self.stdout._out  # type: ignore[assignment]
        console = Console(file=stream, highlight=False, soft_wrap=True)
        run_options = RunOptions(
            backfill_from=options["backfill_from"],
            backfill_to=options["backfill_to"],
            allow_deletes=options["allow_deletes"],
        )
        try:
            run = services.run_create(
                table=table,
                trigger=RunTrigger.BACKFILL if run_options.backfill_from else RunTrigger.COMMAND,
                full_refresh=options["full_refresh"],
                options=run_options,
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"--{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items()
            )
            raise CommandError(f"{table.name}: {problems}", returncode=EXIT_FAILED) from None
        with _progress(console) as progress, run_log_context(run.pk):
            bar = progress.add_task(f"{table.name}: starting", total=None)

            def on_progress(stage: str, rows: int) -> None:
                progress.update(bar, description=f"{table.name}: {stage}", completed=rows)

            try:
                run = services.run_execute(run_id=run.pk, on_progress=on_progress, retry_transient=False)
            except OutcomeNotRecorded as exc:
                raise CommandError(str(exc), returncode=EXIT_FAILED) from None
            except DATABASE_ERRORS as exc:
                raise CommandError(
                    f"run #{run.pk} of {table.name}: Django's database failed during the run "
                    f"({_first_line(exc)}); the reaper settles the run",
                    returncode=EXIT_FAILED,
                ) from None
            progress.update(bar, description=f"{table.name}: {run.status}", completed=run.progress_rows)

        console.print(_summary(run))
        if run.status == RunStatus.SUCCEEDED:
            return
        if run.status == RunStatus.SKIPPED:
            raise CommandError(f"run #{run.pk} skipped: {run.skip_reason}", returncode=EXIT_SKIPPED)
        raise CommandError(f"run #{run.pk} {run.status}: {run.error_message}", returncode=EXIT_FAILED)


class _RowsColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{int(task.completed):,} rows")


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        # The overall rate since the start: rows arrive in whole batches, so a moving average jumps around
        # and disagrees with the summary's figure.
        speed = task.completed / task.elapsed if task.elapsed else 0
        return Text(f"{speed:,.0f} rows/s" if speed else "- rows/s")


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        _RowsColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _summary(run: SyncRun) -> Table:
    table = Table(
        title=f"{run.table_name} - run #{run.pk} {run.status}", show_header=False, title_justify="left"
    )
    table.add_column("", style="bold")
    table.add_column("")
    table.add_row("Status", run.status)
    if run.mode:
        table.add_row("Mode", run.mode + (" (full refresh)" if run.full_refresh else ""))
    if run.backfill_from:
        table.add_row("Backfill", f"{run.backfill_from} .. {run.backfill_to or 'newest'} (inclusive)")
    table.add_row(
        "Rows",
        f"{run.rows_extracted:,} extracted, {run.rows_loaded:,} loaded, {run.rows_inserted:,} inserted, "
        f"{run.rows_updated:,} updated, {run.rows_deleted:,} deleted",
    )
    table.add_row("Bytes", f"{_bytes(run.bytes_extracted)} extracted, {_bytes(run.bytes_loaded)} loaded")
    stages = [
        ("extract", run.extract_seconds),
        ("transform", run.transform_seconds),
        ("load", run.load_seconds),
        ("publish", run.publish_seconds),
    ]
    timed = [f"{stage} {seconds:.2f}s" for stage, seconds in stages if seconds is not None]
    total = _seconds(run.duration)
    table.add_row("Duration", f"{total}" + (f" ({', '.join(timed)})" if timed else ""))
    if run.duration and run.rows_extracted:
        table.add_row("Rate", f"{run.rows_extracted / max(run.duration.total_seconds(), 1e-6):,.0f} rows/s")
    if run.status == RunStatus.SUCCEEDED:
        table.add_row("Watermark", f"{_show(run.watermark_before)} -> {_show(run.watermark_after)}")
        table.add_row("Drift", "; ".join(str(item) for item in run.drift) if run.drift else "none")
    if run.skip_reason:
        table.add_row("Skipped", run.skip_reason)
    if run.error_message:
        table.add_row("Error", f"{run.error_message} ({run.error_kind or 'terminal'})")
    return table


def _bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{count} B"


def _seconds(duration: timedelta | None) -> str:
    return "-" if duration is None else f"{duration.total_seconds():.2f}s"


def _show(value: object) -> str:
    """A stored watermark ({"type": ..., "value": ...}) as its value, or `none` before the first run."""
    if value is None:
        return "none"
    if isinstance(value, dict) and "value" in value:
        return str(value["value"])
    return str(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
