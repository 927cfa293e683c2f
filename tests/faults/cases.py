"""One fault case, start to end (`run_case`): a table synced once, the faulted run started by an executor
(`start_command`: `manage.py sync_table` in a process of its own; `start_worker`: a qcluster worker), stopped at
its point (`strikes`) and struck, then settled and followed by the run that makes the table healthy, while a
reader polls the target. Every case checks and records (`harness.record`): no row lost or duplicated; the
reader saw only the old or the new complete version; the faulted run ends succeeded exactly when its publish
committed, failed otherwise, with a message an operator can read; nothing is left behind (staging tables, the
table's lock, runs queued or running, tasks locked in the broker's queue); and how long until the table is
healthy (the next run succeeded and the target is exact).

A run whose process died is settled by the reaper, called with its orphan grace already passed (`now=` after
it); in production the reaper finds it within that grace plus its interval.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from syncengine import reaper, services
from syncengine.choices import RunStatus, RunTrigger
from syncengine.connections import target_dsn
from syncengine.models import SyncRun
from tests.faults import harness, strikes
from tests.faults.conftest import database_url, process_env
from tests.workers import Cluster

OLD_ROWS = 2000  # in the target before the faulted run
NEW_ROWS = 2000  # added to the source for it
BATCH_SIZE = 100
MIDDLE_ROW = OLD_ROWS + NEW_ROWS // 2


@dataclass
class Command:
    """`manage.py sync_table NAME` in a process of its own."""

    process: subprocess.Popen
    run_id: int
    stderr_path: str

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            with open(self.stderr_path) as err:
                raise AssertionError(f"sync_table exited ({self.process.returncode}): {err.read()[-2000:]}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def settle(self) -> None:
        """Wait for the process to end: a run that outlived its fault records its own outcome."""
        self.process.wait(timeout=120)


@dataclass
class Worker:
    """A run a qcluster worker took from the queue; the worker's pid from the run's executor."""

    run_id: int
    pid: int
    cluster: Cluster

    def check_alive(self) -> None:
        self.cluster.check_alive()

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)

    def settle(self) -> None:
        """Nothing to wait for: a worker's fault waits for what it needs itself."""


def start_command(table, snowflake_server, **env: str):
    def start() -> Command:
        before = SyncRun.objects.filter(table=table).order_by("-pk").values_list("pk", flat=True).first() or 0
        stderr = tempfile.NamedTemporaryFile("w", prefix="fdm-fault-", suffix=".log", delete=False)  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "manage.py", "sync_table", table.name],
            cwd=settings.BASE_DIR,
            env=process_env(snowflake_server, **env),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        stderr.close()
        handle = Command(process, 0, stderr.name)
        handle.run_id = harness.wait_for(
            lambda: SyncRun.objects.filter(table=table, pk__gt=before).values_list("pk", flat=True).first(),
            timeout=120,
            what="sync_table to record its run",
            alive=handle.check_alive,
        )
        return handle

    return start


def start_worker(table, cluster):
    def start() -> Worker:
        run = services.run_enqueue(table=table, trigger=RunTrigger.API)
        return worker_taking(run.pk, cluster)

    return start


def worker_taking(run_id: int, cluster) -> Worker:
    """The worker process that took run `run_id`, once one has."""
    executor = harness.wait_for(
        lambda: (
            SyncRun.objects.filter(pk=run_id).exclude(executor="").values_list("executor", flat=True).first()
        ),
        timeout=120,
        what="a worker to take the run",
        alive=cluster.check_alive,
    )
    return Worker(run_id, int(executor.rsplit(":", 1)[1]), cluster)


def make_faulted_table(make_table, seed_source, *, mode: str, **extra):
    """A table synced once (OLD_ROWS rows), with NEW_ROWS more waiting in the source."""
    fields = {"primary_key": ["TXN_ID"], "batch_size": BATCH_SIZE, "sync_mode": mode, **extra}
    if mode == "incremental":
        fields["incremental_column"] = "UPDATED_AT"
    table = make_table(**fields)
    seed_source(table.snowflake_table, rows=OLD_ROWS)
    first = services.run_execute(run_id=services.run_create(table=table, trigger=RunTrigger.COMMAND).pk)
    assert first.status == RunStatus.SUCCEEDED, first.error_message
    seed_source(table.snowflake_table, rows=NEW_ROWS, start=OLD_ROWS + 1)
    return table


def target_of(table) -> strikes.Target:
    return strikes.Target(
        name=table.name,
        relation=f'"{table.postgres_schema}"."{table.postgres_table}"',
        dsn=target_dsn(),
        django_dsn=database_url(),
    )


def recover(table, run_id: int, *, committed: bool, executor: str) -> SyncRun:
    """Settle a dead run as the reaper does once its grace passed (a run whose process lived on recorded its own
    outcome); then the run that makes the table healthy: a worker's retry (queued by the reaper, or by the run
    itself after a transient failure), or the operator's next `sync_table` (here in this process)."""
    if SyncRun.objects.get(pk=run_id).status == RunStatus.RUNNING:  # its process died with it
        later = timezone.now() + timedelta(seconds=settings.FDM_RUN_ORPHAN_GRACE_SECONDS + 1)
        assert run_id in [run.pk for run in reaper.runs_fail_stale(now=later)]
    killed = SyncRun.objects.get(pk=run_id)
    if committed:
        return killed
    if executor == "worker":
        retry = harness.wait_for(
            lambda: SyncRun.objects.filter(retry_of=killed, status__in=RunStatus.terminal()).first(),
            timeout=120,
            what="the retry to finish",
        )
        # Its worker records the run, vacuums the table, then returns and the broker drops the task.
        harness.wait_for(
            lambda: not harness.queued_task(retry.task_id), timeout=60, what="the retry's task to end"
        )
        return retry
    return services.run_execute(run_id=services.run_create(table=table, trigger=RunTrigger.COMMAND).pk)


def run_case(  # noqa: PLR0913 - the case's parts
    result: harness.CaseResult, table, start, fault, strike, *, expect: str = "presumed dead"
) -> harness.CaseResult:
    """Strike, recover, check and record one case (see the module's docstring). `expect`: words the failed run's
    message must hold."""
    target = target_of(table)
    everything = range(1, OLD_ROWS + NEW_ROWS + 1)
    old, new = harness.expected_version(range(1, OLD_ROWS + 1)), harness.expected_version(everything)
    assert harness.read_version(target.dsn, target.relation) == old
    struck: list[float] = []
    handles: list = []

    def timed_fault(handle) -> None:
        handles.append(handle)
        struck.append(time.monotonic())
        fault(handle)

    with harness.Reader(target.dsn, target.relation) as reader:
        result.struck_at = strike(target, start, timed_fault)
        harness.wait_for(
            lambda: not harness.run_sessions(target.dsn, table.name),
            timeout=120,
            what="the dead run's sessions to end",
        )
        result.dead_session_seconds = round(time.monotonic() - struck[0], 2)
        handles[0].settle()
        assert harness.read_version(target.dsn, target.relation) in (old, new)
        run_id = handles[0].run_id
        result.committed = strikes.state_names_run(target, run_id)
        healthy = recover(table, run_id, committed=result.committed, executor=result.executor)
        assert healthy.status == RunStatus.SUCCEEDED, healthy.error_message
        lost, duplicated, exact = harness.compare(target.dsn, target.relation, everything)
        result.seconds_to_healthy = round(time.monotonic() - struck[0], 2)
    killed = SyncRun.objects.get(pk=run_id)
    result.status, result.message = killed.status, killed.error_message or killed.log[-1]["message"]
    result.rows_lost, result.rows_duplicated = lost, duplicated
    result.reader_saw, result.reader_reads = reader.verdict(old, new), reader.reads
    result.reader_slowest_seconds = round(reader.slowest, 2)
    result.left_behind = harness.leftovers(target.dsn, table.name)
    harness.record(result)

    assert (lost, duplicated, exact) == (0, 0, True)
    assert not result.reader_saw.startswith("OTHER"), result.reader_saw
    assert killed.status == (RunStatus.SUCCEEDED if result.committed else RunStatus.FAILED)
    if not result.committed:
        assert killed.error_kind == "transient" and expect in killed.error_message, killed.error_message
    assert result.left_behind == []
    return result
