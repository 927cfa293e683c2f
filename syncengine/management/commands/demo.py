"""`python manage.py demo`: the whole product on embedded defaults, in one command.

1. Migrate Django's database (the embedded PostgreSQL under .fdm/ unless DATABASE_URL is set).
2. Start the Snowflake emulator (fakesnow in server mode) and seed it with sample financial tables.
3. Import config/demo/tables.yaml, which points at those tables (accounts encrypts two columns, with a keyring
   generated for the demo and kept in .fdm/demo_keyring unless FDM_ENCRYPTION_KEYS is set).
4. Create (or reset) the `admin` login and print it.
5. Start a django-q2 worker cluster and enqueue one sync per table through the real worker path.
6. Wait for the runs, print their summary, then serve the admin at http://127.0.0.1:8000/admin/.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.table import Table

DEMO_CONFIG = Path(settings.BASE_DIR) / "config" / "demo" / "tables.yaml"
DEMO_DATABASE = "DEMO_DB"


class Command(BaseCommand):
    # The start-up checks need the keyring, which this command provides before it starts anything.
    requires_system_checks: list[str] = []
    help = (
        "Run fdm end to end on embedded defaults: start the Snowflake emulator with sample financial data, "
        "sync it into PostgreSQL through the worker queue, and serve the admin."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--rows", type=int, default=300_000, help="transactions to generate (default 300000)"
        )
        parser.add_argument("--port", type=int, default=8000, help="admin web server port (default 8000)")
        parser.add_argument(
            "--snowflake-port", type=int, default=0, help="emulator port (default: a free one)"
        )
        parser.add_argument(
            "--no-serve", action="store_true", help="stop after the syncs instead of serving the admin"
        )
        parser.add_argument(
            "--timeout", type=int, default=600, help="seconds to wait for the syncs (default 600)"
        )

    def handle(self, *args, **options):
        console = Console()
        children: list[subprocess.Popen] = []
        try:
            self._run(console, children, options)
        except KeyboardInterrupt:
            console.print("\nStopping.")
        finally:
            for child in reversed(children):
                _stop(child)

    def _run(self, console: Console, children: list[subprocess.Popen], options: dict) -> None:
        console.rule("fdm demo")
        console.print(f"Django database: {_describe_database()}")
        console.print(f"Encryption keyring: {_demo_keyring()}")
        call_command("migrate", interactive=False, verbosity=0)

        port = options["snowflake_port"] or _free_port()
        console.print(f"Starting the Snowflake emulator on 127.0.0.1:{port} ...")
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", "fakesnow", "-s", "-p", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        _wait_for_port(port, timeout=60)
        # Every process started from here (workers, web server) reaches the emulator through the same settings
        # a real deployment uses.
        os.environ.update(
            {
                "SNOWFLAKE_ACCOUNT": "fakesnow",
                "SNOWFLAKE_USER": "fake",
                "SNOWFLAKE_PASSWORD": "snow",
                "SNOWFLAKE_HOST": "127.0.0.1",
                "SNOWFLAKE_PORT": str(port),
                "SNOWFLAKE_PROTOCOL": "http",
                # The emulator has no ALTER SESSION; this asks it to accept and ignore such statements.
                "SNOWFLAKE_SESSION_PARAMETERS": '{"nop_regexes": ["^ALTER SESSION.*"]}',
            }
        )

        from syncengine.connections import snowflake_settings
        from syncengine.dev.sampledata import seed_demo_dataset

        started = time.monotonic()
        connection = snowflake_settings().connect()
        try:
            counts = seed_demo_dataset(connection, database=DEMO_DATABASE, rows=options["rows"])
        finally:
            connection.close()
        console.print(
            f"Seeded {DEMO_DATABASE} in {time.monotonic() - started:.1f} s: {_format_counts(counts)}"
        )

        call_command("import_tables", str(DEMO_CONFIG), stdout=self.stdout)
        password = _reset_admin_login()

        console.print("Starting the worker cluster (python manage.py qcluster) ...")
        children.append(subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=settings.BASE_DIR))
        runs = _enqueue_all()
        finished = _wait_for_runs(console, runs, timeout=options["timeout"])
        console.print(_runs_table(finished))
        console.print(_target_table())

        failed = [run for run in finished if run.status != "succeeded"]
        login = f"Admin: http://127.0.0.1:{options['port']}/admin/  user: admin  password: {password}"
        if options["no_serve"]:
            console.print(login)
            if failed:
                raise CommandError(f"{len(failed)} demo sync(s) did not succeed; see the runs above")
            return

        console.rule("serving")
        console.print(login)
        console.print("Press Ctrl-C to stop the web server, the workers and the emulator.")
        web = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{options['port']}", "--noreload"],
            cwd=settings.BASE_DIR,
        )
        children.append(web)
        web.wait()


def _describe_database() -> str:
    db = settings.DATABASES["default"]
    if os.environ.get("DATABASE_URL"):
        return f"{db.get('HOST') or 'local socket'}:{db.get('PORT') or 5432}/{db['NAME']} (DATABASE_URL)"
    return f"embedded PostgreSQL under {settings.STATE_DIR / 'pgdata'}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise CommandError(f"the Snowflake emulator did not start on port {port} within {timeout:.0f} s")


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
                f"{config.postgres_schema}.{config.postgres_table}", rows, _protection(conn, config.name)
            )
    return table


def _protection(conn, table_name: str) -> str:
    from syncengine.pipeline.protection.catalog import read_catalog

    catalog = read_catalog(conn, table_name)
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
            (run.error_message or "")[:80],
        )
    return table
