"""Lost connections and the other ways a run ends early, each checked and recorded as the kill matrix's cases
are (`cases.run_case`): the target's sessions terminated mid-COPY and mid-publish (`pg_terminate_backend` of
the sessions named for the run in pg_stat_activity), the source lost mid-extract and a slow source (a TCP proxy
of the test's own between the connector and the emulator), the task timeout stopping a worker's run, and an
encrypted and compressed table killed mid-COPY and after its commit."""

from __future__ import annotations

import psycopg
import pytest
from django.db import transaction
from django_q.tasks import async_task

from syncengine import services
from syncengine.choices import RunStatus, RunTrigger
from syncengine.models import SyncRun
from syncengine.services import EXECUTE_TASK
from tests.faults import harness, strikes
from tests.faults.cases import (
    Command,
    Worker,
    make_faulted_table,
    run_case,
    start_command,
    target_of,
    worker_taking,
)
from tests.faults.proxy import proxy

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

# The source's network: a login and a request give up after this long (the emulator answers in milliseconds).
SOURCE_TIMEOUT = "5"
# The task timeout of the timeout case (django-q2 takes it per task; FDM_SYNC_TIMEOUT sets every sync task's,
# at least 60 s): long enough for the run to reach its publish, which a reader holds up past it.
TASK_TIMEOUT = 10


def terminate(target: strikes.Target, app: str) -> int:
    """pg_terminate_backend of the run's sessions named `fdm <app> <table>`; how many."""
    with psycopg.connect(target.dsn, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name = %s",
            (f"fdm {app} {target.name}",),
        ).fetchall()
    return len(rows)


def terminating(target_of_table, app: str):
    """The fault: terminate the run's `app` sessions; the process lives on and records its failure."""

    def fault(handle: Command) -> None:
        assert terminate(target_of_table, app) > 0

    return fault


@pytest.mark.parametrize(
    ("app", "point", "mode"),
    [("copy", "copy", "full"), ("sync", "publish-wait", "incremental")],
    ids=["copy-sessions-mid-copy", "run-session-mid-publish"],
)
def test_terminated_target_sessions_fail_the_run_transient_and_the_next_run_recovers(
    app, point, mode, make_table, seed_source, snowflake_server
):
    table = make_faulted_table(make_table, seed_source, mode=mode)
    result = harness.CaseResult(
        case=f"terminate-{app}-{point}",
        fault=f"pg_terminate_backend of the run's `fdm {app}` sessions",
        strikes=point,
        mode=mode,
        executor="sync_table",
    )
    fault = terminating(target_of(table), app)
    start = start_command(table, snowflake_server)
    run_case(result, table, start, fault, strikes.STRIKES[point], expect="target database")


def source_lost_at_extract(source, target: strikes.Target, start, fault) -> str:
    handle = start()
    harness.wait_for(
        lambda: strikes.run_logged(target, handle.run_id, "extracting"),
        timeout=strikes.WAIT,
        what="the run to start extracting",
        alive=handle.check_alive,
    )
    fault(handle)
    return "extract: the source's connections reset as the run starts its extract query"


@pytest.mark.faults_full
def test_a_source_lost_mid_extract_fails_the_run_transient(make_table, seed_source, snowflake_server):
    table = make_faulted_table(make_table, seed_source, mode="incremental")
    with proxy(int(snowflake_server["port"])) as source:

        def cut_source(handle: Command) -> None:
            source.cut()
            handle.process.wait(timeout=120)  # the run fails on its own, then the source comes back
            source.restore()

        result = harness.CaseResult(
            case="source-lost-extract",
            fault="the source's connections reset and refused (a TCP proxy)",
            strikes="extract",
            mode="incremental",
            executor="sync_table",
        )
        start = start_command(
            table,
            snowflake_server,
            SNOWFLAKE_PORT=str(source.port),
            SNOWFLAKE_NETWORK_TIMEOUT=SOURCE_TIMEOUT,
            SNOWFLAKE_LOGIN_TIMEOUT=SOURCE_TIMEOUT,
        )
        run_case(
            result,
            table,
            start,
            cut_source,
            lambda target, begin, fault: source_lost_at_extract(source, target, begin, fault),
            expect="Snowflake",
        )


@pytest.mark.faults_full
def test_a_slow_source_delays_the_run_and_nothing_else(make_table, seed_source, snowflake_server):
    table = make_faulted_table(make_table, seed_source, mode="full")
    direct = SyncRun.objects.get(table=table).extract_seconds
    result = harness.CaseResult(
        case="slow-source",
        fault="200 ms added to every chunk the source sends or receives (a TCP proxy)",
        strikes="whole run",
        mode="full",
        executor="sync_table",
    )
    with proxy(int(snowflake_server["port"]), latency=0.2) as source:

        def whole_run(target: strikes.Target, start, fault) -> str:
            handle = start()
            fault(handle)
            handle.process.wait(timeout=300)
            slow = SyncRun.objects.get(pk=handle.run_id)
            result.notes = f"extract {slow.extract_seconds:.1f} s through the proxy, {direct:.1f} s direct"
            return "the whole run, through a proxy that holds every chunk 200 ms"

        start = start_command(table, snowflake_server, SNOWFLAKE_PORT=str(source.port))
        run_case(result, table, start, lambda handle: None, whole_run)
    assert result.status == RunStatus.SUCCEEDED


def start_with_task_timeout(table, cluster):
    """A run handed to the queue with a task timeout of TASK_TIMEOUT seconds."""

    def start() -> Worker:
        run = services.run_create(table=table, trigger=RunTrigger.API)
        with transaction.atomic():
            task_id = async_task(EXECUTE_TASK, run.pk, timeout=TASK_TIMEOUT, task_name=f"fdm-run-{run.pk}")
            SyncRun.objects.filter(pk=run.pk).update(task_id=task_id)
        return worker_taking(run.pk, cluster)

    return start


def test_a_run_stopped_by_the_task_timeout_is_recorded_failed_and_retried(
    make_table, seed_source, worker_cluster, settings
):
    settings.FDM_RETRY_BACKOFF_SECONDS = 0
    table = make_faulted_table(make_table, seed_source, mode="full")

    def wait_for_the_timeout(handle: Worker) -> None:
        harness.wait_for(
            lambda: SyncRun.objects.get(pk=handle.run_id).status != RunStatus.RUNNING,
            timeout=TASK_TIMEOUT + 60,
            what="the task timeout to stop the run",
        )

    result = harness.CaseResult(
        case="task-timeout-publish-wait",
        fault=f"django-q2's task timeout ({TASK_TIMEOUT} s) stops the worker's run",
        strikes="publish-wait",
        mode="full",
        executor="worker",
    )
    run_case(
        result,
        table,
        start_with_task_timeout(table, worker_cluster),
        wait_for_the_timeout,
        strikes.STRIKES["publish-wait"],
        expect="task timeout",
    )


@pytest.mark.parametrize("point", ["copy", "after-commit"])
def test_an_encrypted_compressed_table_killed_loses_nothing(
    point, make_table, seed_source, snowflake_server, keyring
):
    table = make_faulted_table(
        make_table,
        seed_source,
        mode="incremental",
        encryption_mode="columns",
        encrypted_columns=["CURRENCY"],
        compression_mode="columns",
        compressed_columns=["CURRENCY"],
    )
    result = harness.CaseResult(
        case=f"kill-command-{point}-encrypted",
        fault="SIGKILL of `sync_table`; CURRENCY encrypted and compressed",
        strikes=point,
        mode="incremental",
        executor="sync_table",
    )
    run_case(
        result,
        table,
        start_command(table, snowflake_server),
        lambda handle: handle.kill(),
        strikes.STRIKES[point],
    )
    with psycopg.connect(target_of(table).dsn, autocommit=True) as conn:
        kinds = conn.execute(
            f"SELECT DISTINCT pg_typeof(currency)::text FROM {target_of(table).relation}"  # noqa: S608
        ).fetchall()
    assert kinds == [("bytea",)]  # still sealed after the recovery
