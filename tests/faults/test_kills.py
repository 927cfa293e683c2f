"""The kill matrix: SIGKILL of the sync's process, `manage.py sync_table` or a qcluster worker, at each point of
a full and of an incremental run (`strikes`), while a reader polls the target; what each case checks and
records is in `cases`."""

from __future__ import annotations

import threading

import psycopg
import pytest
from django.db import connection

from syncengine import services
from syncengine.choices import RunStatus, RunTrigger
from tests.faults import harness, strikes
from tests.faults.cases import (
    MIDDLE_ROW,
    OLD_ROWS,
    make_faulted_table,
    run_case,
    start_command,
    start_worker,
    target_of,
)

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


POINTS = list(strikes.STRIKES)


def strike_for(point: str):
    if point == "publish-insert":
        return lambda target, start, fault: strikes.strike_publish_insert(
            target, start, fault, at_key=MIDDLE_ROW
        )
    return strikes.STRIKES[point]


@pytest.mark.parametrize("mode", ["full", pytest.param("incremental", marks=pytest.mark.faults_full)])
@pytest.mark.parametrize("point", POINTS)
def test_a_killed_sync_table_loses_nothing_and_recovers(
    point, mode, make_table, seed_source, snowflake_server
):
    table = make_faulted_table(make_table, seed_source, mode=mode)
    result = harness.CaseResult(
        case=f"kill-command-{point}-{mode}",
        fault="SIGKILL of `sync_table`",
        strikes=point,
        mode=mode,
        executor="sync_table",
    )
    run_case(
        result, table, start_command(table, snowflake_server), lambda handle: handle.kill(), strike_for(point)
    )


@pytest.mark.parametrize("mode", ["full", "incremental"])
@pytest.mark.parametrize("point", POINTS)
def test_a_killed_worker_loses_nothing_and_its_retry_recovers(
    point, mode, make_table, seed_source, worker_cluster, settings
):
    settings.FDM_RETRY_BACKOFF_SECONDS = 0  # the reaper's retry goes to the queue at once
    table = make_faulted_table(make_table, seed_source, mode=mode)
    result = harness.CaseResult(
        case=f"kill-worker-{point}-{mode}",
        fault="SIGKILL of a qcluster worker",
        strikes=point,
        mode=mode,
        executor="worker",
    )
    run_case(
        result, table, start_worker(table, worker_cluster), lambda handle: handle.kill(), strike_for(point)
    )


def test_a_waiting_publish_asks_for_the_lock_again_and_publishes_once_let_go(make_table, seed_source):
    """The publish asks for the target's lock in short attempts (what lets a killed run's request lapse): a live
    run's request is asked again while a reader holds the table, and the run publishes once the reader lets
    go; a reader that queued behind an attempt got through in between."""
    table = make_faulted_table(make_table, seed_source, mode="full")
    target = target_of(table)
    run = services.run_create(table=table, trigger=RunTrigger.COMMAND)

    def execute() -> None:
        try:
            services.run_execute(run_id=run.pk)
        finally:
            connection.close()

    def waits_since() -> set:
        with psycopg.connect(target.dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT l.waitstart FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE a.application_name = %s AND NOT l.granted AND l.relation = to_regclass(%s)",
                (f"fdm sync {table.name}", target.relation),
            ).fetchall()
        return {row[0] for row in rows if row[0] is not None}

    with psycopg.connect(target.dsn) as blocker:
        blocker.execute(f"LOCK TABLE {target.relation} IN SHARE MODE")
        worker = threading.Thread(target=execute)
        worker.start()
        attempts: set = set()
        harness.wait_for(
            lambda: len(attempts.__ior__(waits_since())) >= 3, timeout=120, what="three attempts at the lock"
        )
        # A reader arriving now queues behind the attempt, and gets through when it lapses.
        assert harness.read_version(target.dsn, target.relation)[0] == OLD_ROWS
        blocker.rollback()
    worker.join(timeout=120)

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error_message
