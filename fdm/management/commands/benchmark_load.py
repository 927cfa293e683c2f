"""`python manage.py benchmark_load [--clients 50] [--seconds 60] [--tables 200] [--runs 100000]`."""

from __future__ import annotations

import argparse
import sys

from django.core.management.base import BaseCommand, CommandError

from syncengine.dev.load import LoadPlan, run_load_benchmark


def _positive(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be a positive whole number")
    return number


class Command(BaseCommand):
    help = (
        "Serve fdm with gunicorn on 127.0.0.1 over a scratch database (created on the server of DATABASE_URL, "
        "migrated, seeded with TABLES scheduled tables and RUNS runs over 30 days, dropped at the end), time "
        "each admin page and API list endpoint, then run CLIENTS concurrent API clients for SECONDS seconds. "
        "Prints a Markdown report."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--clients", type=_positive, default=50, help="concurrent API clients (default 50)"
        )
        parser.add_argument("--seconds", type=_positive, default=60, help="length of the load (default 60)")
        parser.add_argument("--tables", type=_positive, default=200, help="tables to seed (default 200)")
        parser.add_argument("--runs", type=_positive, default=100_000, help="runs to seed (default 100,000)")

    def handle(self, *args, **options) -> None:
        from django.conf import settings

        from fdm.local_state import ensure_embedded_database

        if settings.EMBEDDED_DATABASE:
            ensure_embedded_database()  # its server holds the scratch database
        command = "python manage.py benchmark_load " + " ".join(
            f"--{name} {options[name]}" for name in ("clients", "seconds", "tables", "runs")
        )
        try:
            report = run_load_benchmark(
                database_url=settings.DATABASE_URL,
                plan=LoadPlan(
                    clients=options["clients"],
                    seconds=options["seconds"],
                    tables=options["tables"],
                    runs=options["runs"],
                ),
                command=command,
                say=lambda message: self.stderr.write(f"... {message}"),
            )
        except Exception as exc:  # one clear line for whatever stopped the benchmark
            raise CommandError(f"benchmark_load failed: {exc}") from exc
        self.stdout.write(report.to_markdown())
        if report.load.errors:
            sys.exit(1)
