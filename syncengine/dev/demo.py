"""The demo: the whole product on embedded defaults, in one command (`python manage.py demo`).

1. Migrate Django's database (the embedded PostgreSQL under .fdm/ unless DATABASE_URL is set).
2. Start the Snowflake emulator (fakesnow in server mode) and seed it with sample financial tables.
3. On the first start (no table configured yet), or with `--reset`, import config/demo/tables.yaml, which points
   at those tables (accounts encrypts two columns, with a keyring generated for the demo and kept in
   .fdm/demo_keyring unless FDM_ENCRYPTION_KEYS is set). Otherwise keep the tables as they are, with the
   operator's edits from the admin.
4. Create (or reset) the `admin` login and print it.
5. Start a django-q2 worker cluster and enqueue one sync per table through the real worker path.
6. Wait for the runs, print their summary, then serve the admin at http://127.0.0.1:8000/admin/.
7. On Ctrl-C (or at the end with `--no-serve`) stop the web server, the workers, the emulator and, when the
   demo started it, the embedded PostgreSQL.

The summary is printed whole when the output is not a terminal (a log file, CI): no cut at 80 columns.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from io import TextIOBase
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from rich.console import Console
from rich.table import Table

from syncengine.dev.emulator import emulator, emulator_environment, free_port
from syncengine.run_text import first_line

DEMO_CONFIG = Path(settings.BASE_DIR) / "config" / "demo" / "tables.yaml"
DEMO_DATABASE = "DEMO_DB"


@dataclass(frozen=True)
class DemoOptions:
    rows: int = 300_000  # transactions to generate
    port: int = 8000  # the admin's web server
    snowflake_port: int = 0  # the emulator's; 0 picks a free one
    serve: bool = True  # serve the admin after the syncs
    timeout: int = 600  # seconds to wait for the syncs
    reset: bool = False  # import the demo's YAML again even though tables are configured
    stop_database: bool = False  # stop the embedded PostgreSQL at the end (the demo started it)


# Wide enough that no line of the summary is cut or folded when the output is a file or a pipe.
LOG_WIDTH = 240


def demo_console(*, terminal: bool | None = None) -> Console:
    """Rich output at the terminal's width, or unbounded enough for a log file when not a terminal (rich would
    otherwise assume 80 columns and cut the tables)."""
    terminal = sys.stdout.isatty() if terminal is None else terminal
    return Console() if terminal else Console(width=LOG_WIDTH, soft_wrap=True)


def run_demo(options: DemoOptions, *, stdout: TextIOBase) -> None:
    """Run the numbered steps of this module's docstring; Ctrl-C, or the end, stops every process started."""
    console = demo_console()
    with ExitStack() as started:
        if options.stop_database:
            started.callback(_stop_database, console)  # registered first: runs last, after the processes
        try:
            _run(console, started, options, stdout)
        except KeyboardInterrupt:
            console.print("\nStopping.")


def _run(console: Console, started: ExitStack, options: DemoOptions, stdout: TextIOBase) -> None:
    console.rule("fdm demo")
    console.print(f"Django database: {_describe_database()}")
    console.print(f"Encryption keyring: {_demo_keyring()}")
    call_command("migrate", interactive=False, verbosity=0)

    port = options.snowflake_port or free_port()
    console.print(f"Starting the Snowflake emulator on 127.0.0.1:{port} ...")
    kwargs = started.enter_context(emulator(port=port))
    # Every process started from here (workers, web server) reaches the emulator through the same settings a
    # real deployment uses.
    os.environ.update(emulator_environment(kwargs))

    from syncengine.connections import snowflake_settings
    from syncengine.dev.sampledata import seed_demo_dataset

    seeding_started = time.monotonic()
    connection = snowflake_settings().connect()
    try:
        counts = seed_demo_dataset(connection, database=DEMO_DATABASE, rows=options.rows)
    finally:
        connection.close()
    console.print(
        f"Seeded {DEMO_DATABASE} in {time.monotonic() - seeding_started:.1f} s: {_format_counts(counts)}"
    )

    demo_tables_import(console, stdout=stdout, reset=options.reset)
    password = _reset_admin_login()

    console.print("Starting the worker cluster (python manage.py qcluster) ...")
    _start(started, [sys.executable, "manage.py", "qcluster"])
    runs = _enqueue_all()
    finished = _wait_for_runs(console, runs, timeout=options.timeout)
    console.print(_runs_table(finished))
    console.print(_target_table())

    failed = [run for run in finished if run.status != "succeeded"]
    login = f"Admin: http://127.0.0.1:{options.port}/admin/  user: admin  password: {password}"
    if not options.serve:
        console.print(login)
        if failed:
            raise CommandError(f"{len(failed)} demo sync(s) did not succeed; see the runs above")
        return

    console.rule("serving")
    console.print(login)
    console.print("Press Ctrl-C to stop the web server, the workers and the emulator.")
    web = _start(
        started, [sys.executable, "manage.py", "runserver", f"127.0.0.1:{options.port}", "--noreload"]
    )
    web.wait()


def demo_tables_import(console: Console, *, stdout: TextIOBase, reset: bool) -> bool:
    """Import the demo's YAML on the first start (no table configured) or when `reset`; True when it did.

    Later starts keep the configured tables, so that what the operator changed in the admin is not undone. A
    reset also removes tables the file does not name (`--prune`)."""
    from syncconfig.models import TableConfig

    configured = TableConfig.objects.count()
    if configured and not reset:
        console.print(
            f"Keeping the {configured} configured table(s) and their edits; {DEMO_CONFIG.name} is imported on "
            "the first start only (`manage.py demo --reset` imports it again)."
        )
        return False
    arguments = [str(DEMO_CONFIG), "--prune"] if configured else [str(DEMO_CONFIG)]
    call_command("import_tables", *arguments, stdout=stdout)
    return True


def _stop_database(console: Console) -> None:
    from django.db import connections

    from fdm.local_state import stop_embedded_database

    connections.close_all()
    if stop_embedded_database():
        console.print("Stopped the embedded PostgreSQL.")


def _start(started: ExitStack, command: list[str]) -> subprocess.Popen:
    """Start a child process of the demo in the project directory; stopped when the demo ends."""
    process = subprocess.Popen(command, cwd=settings.BASE_DIR)
    started.callback(_stop, process)
    return process


def _describe_database() -> str:
    db = settings.DATABASES["default"]
    if os.environ.get("DATABASE_URL"):
        return f"{db.get('HOST') or 'local socket'}:{db.get('PORT') or 5432}/{db['NAME']} (DATABASE_URL)"
    return f"embedded PostgreSQL under {settings.STATE_DIR / 'pgdata'}"


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _format_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{table} {rows:,} rows" for table, rows in counts.items())


def _reset_admin_login() -> str:
    """A fresh random password for `admin` on every demo start; it is printed, never stored in clear."""
    password = secrets.token_urlsafe(12)
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username="admin", defaults={"email": "admin@example.com"})
    user.is_staff = True
    user.is_superuser = True
    user.set_password(password)
    user.save()
    return password


def _enqueue_all():
    from syncconfig.models import TableConfig
    from syncengine.services import run_enqueue

    tables = TableConfig.objects.filter(enabled=True).order_by("name")
    # The emulator starts empty and is seeded afresh, so targets left by an earlier demo are reloaded in full.
    return [run_enqueue(table=table, trigger="command", full_refresh=True) for table in tables]


def _wait_for_runs(console: Console, runs, *, timeout: int):
    from syncengine.models import SyncRun

    ids = [run.id for run in runs]
    deadline = time.monotonic() + timeout
    with console.status("Waiting for the workers to finish the syncs ..."):
        while time.monotonic() < deadline:
            current = list(SyncRun.objects.filter(id__in=ids).order_by("table_name"))
            if all(run.is_terminal for run in current):
                return current
            time.sleep(1)
    raise CommandError(f"the demo syncs did not finish within {timeout} s; is the worker cluster running?")


def _demo_keyring() -> str:
    """Use FDM_ENCRYPTION_KEYS if set; else a keyring kept for the demo under .fdm/ (never in the repository),
    put in this process's environment so that the workers and the web server started from here share it."""
    from syncengine.pipeline.protection.keyring import ENV_NAME, Keyring

    if os.environ.get(ENV_NAME) or os.environ.get(f"{ENV_NAME}_FILE"):
        return f"from {ENV_NAME}"
    path = Path(settings.STATE_DIR) / "demo_keyring"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Keyring.generate().format())
        path.chmod(0o600)
    os.environ[f"{ENV_NAME}_FILE"] = str(path)
    return f"{path} (generated for the demo; {ENV_NAME}_FILE points at it)"


def _target_table() -> Table:
    """What landed in PostgreSQL, counted there, and the URL to look at it with psql or any client."""
    import psycopg

    from syncconfig.models import TableConfig
    from syncengine.connections import target_dsn

    url = settings.TARGET_DATABASE_URL or settings.DATABASE_URL
    table = Table(title=f"Synced tables in PostgreSQL ({url})")
    table.add_column("table")
    table.add_column("rows", justify="right")
    table.add_column("stored protected")
    with psycopg.connect(target_dsn()) as conn:
        for config in TableConfig.objects.filter(enabled=True).order_by("name"):
            name = f'"{config.postgres_schema}"."{config.postgres_table}"'
            exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
            if exists and exists[0]:
                count = conn.execute(f"SELECT count(*) FROM {name}").fetchone()  # noqa: S608 - quoted names
                rows = f"{count[0]:,}" if count else "-"
            else:
                rows = "not created"
            table.add_row(
                f"{config.postgres_schema}.{config.postgres_table}",
                rows,
                _protection(conn, config.postgres_schema, config.postgres_table),
            )
    return table


def _protection(conn, schema: str, table: str) -> str:
    from syncengine.pipeline.protection.catalog import read_catalog

    catalog = read_catalog(conn, schema, table)
    if catalog is None:
        return "-"
    parts = []
    for column in catalog.columns:
        how = " + ".join(
            word
            for word, on in (
                ("compressed", column.compressed),
                ("encrypted", column.encrypted),
                ("searchable", bool(column.blind_index)),
            )
            if on
        )
        parts.append(f"{column.target_name} ({how})")
    return ", ".join(parts)


def _runs_table(runs) -> Table:
    table = Table(title="Demo syncs")
    for column in ("table", "status", "rows extracted", "inserted", "updated", "seconds", "error"):
        table.add_column(column)
    for run in runs:
        seconds = (
            (run.finished_at - run.started_at).total_seconds() if run.started_at and run.finished_at else 0
        )
        table.add_row(
            run.table_name,
            run.status,
            f"{run.rows_extracted:,}",
            f"{run.rows_inserted:,}",
            f"{run.rows_updated:,}",
            f"{seconds:.1f}",
            first_line(run.error_message or ""),
        )
    return table
