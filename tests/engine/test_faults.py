"""Faults around a run's bookkeeping: Django's database lost mid-run, a process killed right after the publish
committed, a publish that waits. Each test states the fault, where it strikes (driven by the run's own
progress: its stage, a waiting lock, the target's state) and what must hold afterwards.

Faults that restart or stop PostgreSQL use a cluster of the test's own (tests/private_postgres.py); the shared
server only ever sees connections these tests opened cut.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from syncengine import reaper, recorder, services
from syncengine.choices import ErrorKind, RunStatus, RunTrigger
from syncengine.connections import target_dsn
from syncengine.models import SyncRun
from tests.private_postgres import PrivatePostgres, private_postgres

from .conftest import SOURCE_DATABASE, SOURCE_SCHEMA, unique_name

pytestmark = pytest.mark.faults


def wait_for(
    condition: Callable[[], object], *, timeout: float, what: str, alive: subprocess.Popen | None = None
):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if alive is not None and alive.poll() is not None:
            raise AssertionError(
                f"the process exited ({alive.returncode}) before {what}: {alive.stderr.read()}"
            )
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def waiting_on(query: Callable[..., list], relation: str) -> list:
    """Backends waiting for a lock on `relation` (the run's publish, held up by a reader's lock)."""
    return query("SELECT pid FROM pg_locks WHERE relation = to_regclass(%s) AND NOT granted", (relation,))


# --- Django's database connection lost mid-run (in this process) -------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_run_whose_django_connection_is_cut_mid_extract_goes_on_and_records_its_outcome(
    make_table, seed_source, target_rows, pg_server_url
):
    """Fault: the run's connection to Django's database is terminated as the first batch arrives, before the
    progress write. Must hold: the pipeline is not disturbed, the run succeeds and is recorded on a fresh
    connection, and its log says what happened."""
    table = make_table()
    seed_source(table.snowflake_table, rows=30)
    run = services.run_create(table=table, trigger=RunTrigger.COMMAND)
    cut: list[int] = []

    def cut_django_connection(stage: str, rows: int) -> None:
        if stage == "extract" and not cut:
            pid = connection.connection.info.backend_pid
            with psycopg.connect(pg_server_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
            cut.append(pid)

    run = services.run_execute(run_id=run.pk, on_progress=cut_django_connection)

    assert cut, "the fault was not injected"
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    assert (run.rows_extracted, run.rows_inserted) == (30, 30)
    assert target_rows(table) == 30
    messages = [entry["message"] for entry in run.log]
    assert any(message.startswith("could not write the run's progress") for message in messages)
    assert "published" in messages
    assert connection.connection.info.backend_pid != cut[0]


@pytest.mark.django_db(transaction=True)
def test_the_outcome_is_saved_on_a_fresh_connection_when_the_old_one_died(make_table, pg_server_url):
    """Fault: the run's Django connection dies between the pipeline's failure and recording it. Must hold:
    the failure is recorded (a reconnect), not raised."""
    table = make_table()
    run = services.run_create(table=table, trigger=RunTrigger.COMMAND)
    run.start(executor="test")
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (connection.connection.info.backend_pid,))

    from syncengine.pipeline.errors import TransientError

    kind = recorder.record_failure(run, TransientError("target database unavailable: gone", table=table.name))

    assert kind == ErrorKind.TRANSIENT
    run.refresh_from_db()
    assert (run.status, run.error_kind) == (RunStatus.FAILED, ErrorKind.TRANSIENT)
    assert "target database unavailable" in run.error_message


def test_djangos_own_connection_errors_are_transient():
    from django.db.utils import InterfaceError, OperationalError

    assert recorder.classify(OperationalError("server closed the connection unexpectedly")) == "transient"
    assert recorder.classify(InterfaceError("connection already closed")) == "transient"


# --- PostgreSQL restarted or stopped under a `sync_table` (a cluster of the test's own) ----------------------


@pytest.fixture(scope="module")
def fdm_cluster() -> Iterator[PrivatePostgres]:
    """fdm's database and the target on one private cluster (the default setup: they share a server)."""
    with private_postgres() as cluster:
        manage(cluster, "migrate", "-v0", timeout=180)
        yield cluster


def command_env(cluster: PrivatePostgres) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": cluster.url("fdm"), "LOG_LEVEL": "CRITICAL", "PYTHONUNBUFFERED": "1"}
    env.pop("TARGET_DATABASE_URL", None)
    return env


def manage(cluster: PrivatePostgres, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=command_env(cluster),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_sync(cluster: PrivatePostgres, name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "sync_table", name],
        cwd=settings.BASE_DIR,
        env=command_env(cluster),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def private_table(fdm_cluster, seed_source) -> str:
    """A full-mode table configured in the private cluster, synced once (20 rows), with 10 more rows waiting."""
    name = unique_name("pg_fault")
    seed_source(name, rows=20)
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "tables.yaml"
        config.write_text(
            "tables:\n"
            f"  - name: {name}\n"
            f"    snowflake: {{database: {SOURCE_DATABASE}, schema: {SOURCE_SCHEMA}, table: {name.upper()}}}\n"
            f"    postgres: {{schema: public, table: {name}}}\n"
            '    sync_mode: "full"\n'
            '    schedule: "manual"\n'
            "    primary_key: [TXN_ID]\n"
        )
        imported = manage(fdm_cluster, "import_tables", str(config))
        assert imported.returncode == 0, imported.stderr
    first = manage(fdm_cluster, "sync_table", name)
    assert first.returncode == 0, first.stderr
    seed_source(name, rows=10, start=21)
    return name


def run_of(cluster: PrivatePostgres, name: str) -> dict:
    rows = cluster.query(
        "SELECT id, status, error_kind, error_message, rows_extracted, stage FROM syncengine_syncrun "
        "WHERE table_name = %s ORDER BY id DESC LIMIT 1",
        (name,),
    )
    return dict(
        zip(("id", "status", "error_kind", "error_message", "rows_extracted", "stage"), rows[0], strict=True)
    )


def held_in_publish(cluster: PrivatePostgres, name: str) -> tuple[subprocess.Popen, psycopg.Connection]:
    """Start a sync of `name` while a reader holds its target table: the run stages every row, then waits in
    its publish for the reader."""
    reader = psycopg.connect(cluster.url("fdm"))
    reader.execute(f'LOCK TABLE public."{name}" IN ACCESS SHARE MODE')
    process = start_sync(cluster, name)
    wait_for(
        lambda: waiting_on(cluster.query, f'public."{name}"'),
        timeout=90,
        what="the run to wait in its publish",
        alive=process,
    )
    return process, reader


def test_a_postgresql_restart_mid_publish_fails_the_run_transient_with_the_targets_error(
    fdm_cluster, private_table
):
    """Fault: the server holding both fdm's database and the target restarts (immediate: every backend
    killed) while the run waits in its publish. Must hold: the target keeps its 20 rows, the run is recorded
    failed and transient with the target's error (not Django's), `sync_table` exits 1 with one line."""
    process, reader = held_in_publish(fdm_cluster, private_table)
    wait_for(
        lambda: run_of(fdm_cluster, private_table)["stage"] == "publish", timeout=15, what="stage publish"
    )
    fdm_cluster.stop("immediate")
    fdm_cluster.start()
    reader.close()
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 1, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("CommandError: run #") and "failed" in lines[0]
    run = run_of(fdm_cluster, private_table)
    assert (run["status"], run["error_kind"]) == ("failed", "transient")
    assert "target database" in run["error_message"]
    assert run["rows_extracted"] == 30
    assert fdm_cluster.query(f'SELECT count(*) FROM public."{private_table}"') == [(20,)]  # noqa: S608


def test_a_run_whose_outcome_cannot_be_recorded_exits_with_one_line_and_is_reaped(fdm_cluster, private_table):
    """Fault: the server stops while the run waits in its publish and stays down longer than the run retries
    recording its outcome. Must hold: `sync_table` exits 1 with one line saying so; once the server is back,
    the reaper fails the run (transient) after the orphan grace, and the target kept its 20 rows."""
    process, reader = held_in_publish(fdm_cluster, private_table)
    fdm_cluster.stop("immediate")
    reader.close()
    try:
        _, stderr = process.communicate(timeout=120)
    finally:
        fdm_cluster.start()

    assert process.returncode == 1, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "stayed unreachable" in lines[0] and "the reaper settles the run" in lines[0]
    assert run_of(fdm_cluster, private_table)["status"] == "running"

    reaped = manage(
        fdm_cluster,
        "shell",
        "-c",
        "from datetime import timedelta; from django.conf import settings; from django.utils import timezone; "
        "from syncengine import reaper; "
        "soon = timezone.now() + timedelta(seconds=settings.FDM_RUN_ORPHAN_GRACE_SECONDS + 1); "
        "print(len(reaper.runs_fail_stale(now=soon)))",
    )
    assert reaped.stdout.strip().splitlines()[-1] == "1", reaped.stderr
    run = run_of(fdm_cluster, private_table)
    assert (run["status"], run["error_kind"]) == ("failed", "transient")
    assert fdm_cluster.query(f'SELECT count(*) FROM public."{private_table}"') == [(20,)]  # noqa: S608


# --- killed right after the publish committed (the shared server; only this test's own sessions) ------------


@pytest.mark.django_db(transaction=True)
def test_a_run_killed_right_after_its_publish_committed_is_recorded_as_succeeded(
    make_table, seed_source, target, target_rows, test_database_url
):
    """Fault: SIGKILL of `sync_table` after the publishing transaction committed and before the run's outcome
    is saved (the test holds the run's record locked, so the process stops right there). Must hold: the target
    has the new rows; the reaper reads the run's id and counts from the target's state and records the run
    as succeeded, not as failed with "nothing was published"."""
    table = make_table(primary_key=["TXN_ID"])
    seed_source(table.snowflake_table, rows=20)
    first = services.run_execute(run_id=services.run_create(table=table, trigger=RunTrigger.COMMAND).pk)
    assert first.status == RunStatus.SUCCEEDED, first.error_message
    seed_source(table.snowflake_table, rows=10, start=21)
    relation = f'public."{table.postgres_table}"'

    reader = psycopg.connect(target_dsn())
    reader.execute(f"LOCK TABLE {relation} IN ACCESS SHARE MODE")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "sync_table", table.name],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DATABASE_URL": test_database_url, "LOG_LEVEL": "CRITICAL"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: waiting_on(target, relation), timeout=90, what="the publish to wait", alive=process)
        run = wait_for(
            lambda: SyncRun.objects.filter(table=table, stage="publish").first(),
            timeout=15,
            what="the run's stage to read publish",
        )
        assert run.status == RunStatus.RUNNING
        with psycopg.connect(test_database_url) as record_lock:
            record_lock.execute("SELECT 1 FROM syncengine_syncrun WHERE id = %s FOR UPDATE", (run.pk,))
            reader.rollback()  # the publish goes on and commits; the process then waits on its record
            wait_for(
                lambda: target(
                    "SELECT 1 FROM _fdm.sync_state WHERE table_name = %s AND run_id = %s",
                    (table.name, str(run.pk)),
                ),
                timeout=60,
                what="the publish to commit",
                alive=process,
            )
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            record_lock.rollback()
    finally:
        reader.close()
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)

    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING  # nobody recorded it ...
    assert target_rows(table) == 30  # ... but its data is in
    wait_for(
        lambda: (
            not target(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = %s", (f"fdm sync {table.name}",)
            )
        ),
        timeout=30,
        what="the killed run's session to end",
    )
    soon = timezone.now() + timedelta(seconds=settings.FDM_RUN_ORPHAN_GRACE_SECONDS + 1)
    assert [reaped.pk for reaped in reaper.runs_fail_stale(now=soon)] == [run.pk]

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert (run.rows_extracted, run.rows_inserted, run.rows_deleted) == (30, 30, 20)
    assert run.error_message == ""
    assert "recorded by the reaper" in run.log[-1]["message"]
    assert not SyncRun.objects.filter(retry_of=run).exists()


# --- a publish that waits; a run that fails after extracting ------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_run_waiting_in_its_publish_says_so_and_keeps_its_heartbeat(
    make_table, seed_source, target, target_rows, monkeypatch
):
    """Fault: a reader holds the target table, so the publish waits. Must hold: the run's stage is `publish`
    and its heartbeat keeps moving while it waits; it publishes once the reader lets go."""
    monkeypatch.setattr(recorder, "HEARTBEAT_INTERVAL_SECONDS", 0.2)
    table = make_table(primary_key=["TXN_ID"])
    seed_source(table.snowflake_table, rows=20)
    first = services.run_execute(run_id=services.run_create(table=table, trigger=RunTrigger.COMMAND).pk)
    assert first.status == RunStatus.SUCCEEDED, first.error_message
    relation = f'public."{table.postgres_table}"'
    run = services.run_create(table=table, trigger=RunTrigger.COMMAND)

    def execute() -> None:
        try:
            services.run_execute(run_id=run.pk)
        finally:
            connection.close()

    with psycopg.connect(target_dsn()) as reader:
        reader.execute(f"LOCK TABLE {relation} IN ACCESS SHARE MODE")
        worker = threading.Thread(target=execute)
        worker.start()
        wait_for(lambda: waiting_on(target, relation), timeout=60, what="the publish to wait")
        wait_for(
            lambda: SyncRun.objects.get(pk=run.pk).stage == "publish",
            timeout=5,
            what="the stage to read publish",
        )
        beat = SyncRun.objects.get(pk=run.pk).heartbeat_at
        wait_for(
            lambda: SyncRun.objects.get(pk=run.pk).heartbeat_at > beat,
            timeout=10,
            what="a heartbeat while waiting",
        )
    worker.join(timeout=60)

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error_message


@pytest.mark.django_db
def test_a_failed_run_records_the_rows_it_extracted(make_table, snowflake):
    table = make_table(primary_key=["TXN_ID"])
    source = f"{SOURCE_DATABASE}.{SOURCE_SCHEMA}.{table.snowflake_table}"
    snowflake.execute(f"CREATE TABLE {source} (TXN_ID NUMBER(38,0), CURRENCY TEXT)")
    # Keys 1-5 twice: the key check fails the run once the rows are read.
    snowflake.executemany(
        f"INSERT INTO {source} (TXN_ID, CURRENCY) VALUES (%s, %s)",  # noqa: S608 - the test's own table
        [(i % 25 + 1, "EUR") for i in range(30)],
    )

    run = services.run_execute(run_id=services.run_create(table=table, trigger=RunTrigger.COMMAND).pk)

    assert (run.status, run.error_kind) == (RunStatus.FAILED, ErrorKind.TERMINAL)
    assert run.rows_extracted == 30
    run.refresh_from_db()
    assert run.rows_extracted == 30


@pytest.mark.django_db
def test_a_run_that_fails_after_its_publish_committed_is_recorded_as_succeeded(
    make_table, seed_source, target_rows
):
    """Fault: an error raised after the publishing transaction committed (here by the caller's progress
    callback, at the progress report that follows the commit). Must hold: the run is recorded as succeeded
    with what the target's state says it published, not as failed."""
    table = make_table()
    seed_source(table.snowflake_table, rows=12)

    def fail_after_the_commit(stage: str, rows: int) -> None:
        if stage == "publish" and rows > 0:
            raise RuntimeError("the progress display broke")

    run = services.run_execute(
        run_id=services.run_create(table=table, trigger=RunTrigger.COMMAND).pk,
        on_progress=fail_after_the_commit,
    )

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    assert (run.rows_extracted, run.rows_inserted) == (12, 12)
    assert run.watermark_after is None  # a full table without an incremental column
    assert "recorded by its own process after an error" in run.log[-1]["message"]
    assert target_rows(table) == 12
