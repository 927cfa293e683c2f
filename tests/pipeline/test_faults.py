"""Faults the core meets on its own connections: a target that refuses the staging connections, a Snowflake
session that is lost. Each says what must hold: the run fails, transient, with the cause in its message."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import uuid

import psycopg
import pytest
import snowflake.connector
from snowflake.connector import errors as sf_errors
from snowflake.connector.backoff_policies import DEFAULT_BACKOFF_CAP

from syncengine.dev.emulator import emulator, emulator_settings, free_port
from syncengine.pipeline import bootstrap, extract
from syncengine.pipeline.errors import TransientError
from syncengine.pipeline.load import StagingWriter
from syncengine.pipeline.locks import try_lock_table
from syncengine.pipeline.runner import run_sync
from syncengine.pipeline.source import classify_snowflake_error, close_in_background
from syncengine.pipeline.spec import SourceRef, TableSpec, TargetRef

from .conftest import staging_tables

pytestmark = pytest.mark.faults


def test_a_staging_connection_that_fails_is_a_transient_error_naming_the_cause(pg_server_url):
    info = psycopg.conninfo.conninfo_to_dict(pg_server_url)
    unreachable = psycopg.conninfo.make_conninfo(
        **(info | {"port": str(free_port()), "connect_timeout": "2"})
    )

    with pytest.raises(TransientError, match="Connection refused"):
        StagingWriter(unreachable, "staging", table="orders", source_names={}, streams=2)


def test_a_target_that_refuses_the_copy_connections_fails_the_run_transient(
    source, make_spec, settings, scratch_database, pg_server_url, target
):
    """The run's own connection (holding the table's lock) is the role's only allowed one, so the COPY
    streams are refused: the run fails transient, says why, and leaves no staging table."""
    source.sql(f"CREATE TABLE {source.table('LIMITED')} (ID NUMBER(38,0), NAME TEXT)")
    source.sql(f"INSERT INTO {source.table('LIMITED')} VALUES (1, 'a'), (2, 'b')")  # noqa: S608
    role = f"fdm_limited_{uuid.uuid4().hex[:8]}"
    database = psycopg.conninfo.conninfo_to_dict(scratch_database)["dbname"]
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 1')
        admin.execute(f'ALTER DATABASE "{database}" OWNER TO "{role}"')
    limited = psycopg.conninfo.make_conninfo(scratch_database, user=role)
    try:
        with pytest.raises(TransientError) as raised:
            run_sync(make_spec("LIMITED"), source=settings, target_dsn=limited)
    finally:
        with psycopg.connect(scratch_database, autocommit=True) as owner:
            owner.execute(f'REASSIGN OWNED BY "{role}" TO CURRENT_USER')
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" OWNER TO CURRENT_USER')
            admin.execute(f'DROP ROLE "{role}"')

    assert "too many connections" in str(raised.value)
    assert staging_tables(target) == []
    assert target("SELECT to_regclass('public.limited')") == [(None,)]


@pytest.mark.parametrize(
    "error",
    [
        sf_errors.HttpError(
            msg="401 Unauthorized: POST host/queries/v1/query-request", errno=290401, sqlstate="08001"
        ),
        sf_errors.ProgrammingError(
            msg="Session no longer exists.  New login required to access the service.", errno=390111
        ),
        sf_errors.ProgrammingError(msg="Session expired", errno=390112),
        sf_errors.ProgrammingError(msg="Authentication token has expired.", errno=390114),
        sf_errors.DatabaseError(msg="connection was lost", errno=999999, sqlstate="08006"),
    ],
    ids=["http-401", "390111", "390112", "390114", "sqlstate-08"],
)
def test_a_lost_source_session_is_transient(error):
    classified = classify_snowflake_error(error, table="orders")
    assert isinstance(classified, TransientError)
    assert str(classified).startswith("orders: Snowflake query failed: ")


def test_a_source_killed_mid_run_fails_the_run_within_one_network_timeout(
    scratch_database, target, monkeypatch
):
    """Fault: the Snowflake emulator (an instance of this test's own) is killed as the run starts to extract.
    Must hold: the run fails transient as soon as the query gives up (after one SNOWFLAKE_NETWORK_TIMEOUT and
    the connector's last backoff), without waiting for the connector's abort and logout requests, which
    retry for another timeout; the table's lock is free and no staging table is left.

    How fast the connector's abort gives up varies, so each background close is held until the run has
    returned: a run that waited for one would wait for the hold (a minute) and overrun the bound."""
    network_timeout = 8
    run_returned = threading.Event()
    closes: list[str] = []

    def held_close(close, *, what):
        closes.append(what)

        def after_the_run():
            run_returned.wait(60)
            return close()

        close_in_background(after_the_run, what=what)

    monkeypatch.setattr(extract, "close_in_background", held_close)
    monkeypatch.setattr(bootstrap, "close_in_background", held_close)
    running = set(multiprocessing.active_children())
    with emulator() as kwargs:
        (process,) = [child for child in multiprocessing.active_children() if child not in running]
        conn = snowflake.connector.connect(**kwargs)
        for statement in (
            "CREATE DATABASE OUTAGE",
            "CREATE SCHEMA OUTAGE.PUBLIC",
            "CREATE TABLE OUTAGE.PUBLIC.ORDERS (ID NUMBER(38,0), NAME TEXT)",
            "INSERT INTO OUTAGE.PUBLIC.ORDERS VALUES (1, 'a'), (2, 'b')",
        ):
            conn.cursor().execute(statement)
        conn.close()
        killed_at: list[float] = []

        def kill_source_when_extracting(level: str, message: str, **fields: object) -> None:
            if message == "extracting":
                os.kill(process.pid, signal.SIGKILL)
                killed_at.append(time.monotonic())

        spec = TableSpec(
            name="orders",
            source=SourceRef("OUTAGE", "PUBLIC", "ORDERS"),
            target=TargetRef("public", "orders"),
        )
        settings = emulator_settings(kwargs, login_timeout=network_timeout, network_timeout=network_timeout)
        try:
            with pytest.raises(TransientError, match="Snowflake query failed"):
                run_sync(spec, source=settings, target_dsn=scratch_database, log=kill_source_when_extracting)
            failed_after = time.monotonic() - killed_at[0]
        finally:
            run_returned.set()

    assert "source cursor" in closes, "the failed query's cursor was not closed in the background"
    # One timeout, plus at most the connector's last backoff sleep (it sleeps before checking the deadline).
    assert failed_after < network_timeout + DEFAULT_BACKOFF_CAP + 2, f"failed after {failed_after:.1f}s"
    with psycopg.connect(scratch_database, autocommit=True) as other_run:
        assert try_lock_table(other_run, "orders")
    assert staging_tables(target) == []
