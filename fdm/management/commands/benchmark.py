"""`python manage.py benchmark [--rows N]`: measure source read, COPY and full/incremental syncs side by side."""

from __future__ import annotations

import argparse
import functools
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from syncengine.connections import target_dsn
from syncengine.dev.benchmark import run_benchmark


def _positive(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be a positive whole number")
    return number


def _sizes(value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(_positive(part.replace("_", "")) for part in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("must be positive whole numbers separated by commas") from None
    return sizes


class Command(BaseCommand):
    help = (
        "Seed the Snowflake emulator (started in a child process) with N transactions and measure, in one "
        "run: reading the source alone, COPY of the same data alone, a full sync and an incremental sync, "
        "with rows/s and peak memory. Writes into a scratch database created (and dropped) on the server of "
        "TARGET_DATABASE_URL, else DATABASE_URL, else the embedded PostgreSQL. Prints a Markdown table."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--rows", type=_positive, default=1_000_000, help="rows to seed (default 1,000,000)"
        )
        parser.add_argument(
            "--batch-size", type=_positive, default=100_000, help="rows per Arrow batch (default 100,000)"
        )
        parser.add_argument(
            "--small-tables",
            type=int,
            default=0,
            metavar="N",
            help="also sync N tables of 1,000 rows through two worker processes, with and without pooled "
            "Snowflake sessions (200: about 2 minutes)",
        )
        parser.add_argument(
            "--reconcile",
            action="store_true",
            help="measure reconciliation instead: deep and light checks of the synced table, equal and with "
            "10 differences planted (time, queries, bytes returned)",
        )

        parser.add_argument(
            "--slices",
            action="store_true",
            help="measure the sliced extract instead: source alone, COPY alone and full syncs read in one query "
            "and in key-range slices, at each of --slice-sizes, with time and memory ratios",
        )
        parser.add_argument(
            "--slice-sizes",
            type=_sizes,
            default=(1_000_000, 5_000_000),
            help="table sizes for --slices, comma-separated (default 1000000,5000000)",
        )

    def handle(self, *args, **options) -> None:
        from django.conf import settings

        from fdm.local_state import ensure_embedded_database

        if settings.EMBEDDED_DATABASE and not settings.TARGET_DATABASE_URL:
            ensure_embedded_database()  # its server holds the scratch database
        if options["slices"]:
            self._slices(options)
            return
        benchmark: Any = functools.partial(run_benchmark, small_tables=options["small_tables"])
        if options["reconcile"]:
            from syncengine.dev.reconcile_benchmark import run_reconcile_benchmark

            benchmark = run_reconcile_benchmark
        try:
            report = benchmark(
                server_dsn=target_dsn(),
                rows=options["rows"],
                batch_size=options["batch_size"],
                say=lambda message: self.stderr.write(f"... {message}"),
            )
        except Exception as exc:  # one clear line for whatever stopped the benchmark
            raise CommandError(f"benchmark failed: {exc}") from exc
        self.stdout.write(report.to_markdown())

    def _slices(self, options: dict) -> None:
        from syncengine.dev.slice_benchmark import run_slice_benchmark

        try:
            report = run_slice_benchmark(
                server_dsn=target_dsn(),
                sizes=options["slice_sizes"],
                batch_size=options["batch_size"],
                say=lambda message: self.stderr.write(f"... {message}"),
            )
        except Exception as exc:  # one clear line for whatever stopped the benchmark
            raise CommandError(f"benchmark failed: {exc}") from exc
        self.stdout.write(report.to_markdown())
