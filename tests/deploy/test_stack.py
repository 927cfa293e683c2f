"""The compose stack's processes, run on this machine with the commands docker-compose.yml gives them: gunicorn
serving fdm, two workers (`qcluster`, FDM_SCHEDULER=false) and the one scheduler on the Redis broker, and
Prometheus (Debian's package) scraping fdm with monitoring/prometheus.yml. The web runs in the production posture
behind a TLS-terminating proxy (FDM_HTTPS on, X-Forwarded-Proto sent by the client standing in for the proxy)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import yaml
from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule, Task

from fdm.api.roles import Role
from fdm.apikeys.services import service_key_create
from syncconfig.models import TableConfig
from syncengine import reaper
from syncengine.choices import RunStatus
from syncengine.connections import target_dsn
from syncengine.dev.sampledata import seed_transactions
from syncengine.models import SyncRun
from syncengine.services import EXECUTE_TASK
from tests.deploy.tools import find_tool
from tests.workers import WORKER_KEYRING

pytestmark = [pytest.mark.slow, pytest.mark.stack, pytest.mark.django_db(transaction=True)]

ROOT = Path(settings.BASE_DIR)
# A Redis database of its own, so that no other test's queue meets this one's.
REDIS_URL = os.environ.get("FDM_STACK_REDIS_URL", "redis://127.0.0.1:6379/13")
SOURCE = "FDM_STACK.PUBLIC"
ROWS = 30
BIG_ROWS = 1_000_000
DUE_FUNC = "math.copysign"  # a task no other part of fdm runs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name}\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, sig)  # its own session: the process and its children, nothing else
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


@dataclass
class Stack:
    environment: dict[str, str]
    folder: Path
    web_url: str = ""
    prometheus_url: str = ""
    processes: list[Process] = field(default_factory=list)

    def start(self, name: str, command: list[str], **extra: str) -> Process:
        log = self.folder / f"{name}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**self.environment, **extra},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(process.tail() for process in self.processes)

    def wait_for(self, condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            for process in self.processes:
                if process.popen.poll() is not None and process.name != "migrate":
                    raise AssertionError(f"{process.name} exited while waiting for {what}\n{self.logs()}")
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{self.logs()}")

    def api(self, method: str, path: str, key: str, body: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(
            self.web_url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Authorization": f"Api-Key {key}",
                "Content-Type": "application/json",
                "X-Forwarded-Proto": "https",  # what the TLS-terminating proxy adds
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def prometheus(self, query: str) -> list[dict]:
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())["data"]["result"]
        except OSError:
            return []


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def stack(snowflake_env, test_database_url, tmp_path) -> Iterator[Stack]:
    """migrate, then gunicorn, two workers and the scheduler, and Prometheus when its package is installed."""
    redis.Redis.from_url(REDIS_URL).flushdb()
    environment = {
        **os.environ,
        "DATABASE_URL": test_database_url,
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FDM_HTTPS": "true",
        "FDM_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO=https",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "FDM_ENCRYPTION_KEYS": WORKER_KEYRING,
        "FDM_WORKERS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    environment.pop("TARGET_DATABASE_URL", None)
    bin_dir = Path(sys.executable).parent
    stack = Stack(environment=environment, folder=tmp_path)
    try:
        migrate = stack.start("migrate", [sys.executable, "manage.py", "migrate", "--noinput"])
        assert migrate.popen.wait(timeout=300) == 0, migrate.tail()

        port = free_port()
        stack.web_url = f"http://127.0.0.1:{port}"
        gunicorn = [str(bin_dir / "gunicorn"), "fdm.wsgi:application", "--bind", f"127.0.0.1:{port}"]
        stack.start("web", [*gunicorn, "--workers", "2", "--timeout", "60"])
        for number in (1, 2):
            stack.start(f"worker-{number}", [sys.executable, "manage.py", "qcluster"], FDM_SCHEDULER="false")
        stack.start("scheduler", [sys.executable, "manage.py", "qcluster"], FDM_SCHEDULER="true")
        stack.wait_for(lambda: http_ok(stack.web_url + "/health/live"), timeout=60, what="gunicorn")

        prometheus = find_tool("prometheus")
        if prometheus is not None:
            config = yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text())
            config["global"].update(scrape_interval="1s", evaluation_interval="1s")
            config["rule_files"] = [
                str(rules_without_waits(ROOT / "monitoring" / path, tmp_path))
                for path in config["rule_files"]
            ]
            config["scrape_configs"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
            (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
            prometheus_port = free_port()
            stack.prometheus_url = f"http://127.0.0.1:{prometheus_port}"
            command = [
                prometheus,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
            ]
            stack.start("prometheus", command)
        yield stack
    finally:
        for process in reversed(stack.processes):
            process.stop()


def rules_without_waits(path: Path, folder: Path) -> Path:
    """The shipped alert rules with their `for` waits cut to none, so that a rule whose condition holds fires
    within the test's seconds rather than after its minutes."""
    rules = yaml.safe_load(path.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("for", None)
    copy = folder / path.name
    copy.write_text(yaml.safe_dump(rules))
    return copy


def seed_source(snowflake_env: dict, name: str) -> None:
    import snowflake.connector

    with snowflake.connector.connect(**snowflake_env) as connection:
        cursor = connection.cursor()
        cursor.execute("CREATE DATABASE IF NOT EXISTS FDM_STACK")
        cursor.execute("CREATE SCHEMA IF NOT EXISTS FDM_STACK.PUBLIC")
        table = f"{SOURCE}.{name.upper()}"
        cursor.execute(f"CREATE TABLE {table} (TXN_ID NUMBER(38,0) PRIMARY KEY, AMOUNT NUMBER(18,2))")
        cursor.executemany(
            f"INSERT INTO {table} (TXN_ID, AMOUNT) VALUES (%s, %s)",  # noqa: S608 (the test's own name)
            [(i, Decimal(i) + Decimal("0.25")) for i in range(1, ROWS + 1)],
        )


def seed_big_source(snowflake_env: dict, name: str) -> None:
    """A table large enough that its sync is still running when the test kills the worker."""
    import snowflake.connector

    with snowflake.connector.connect(**snowflake_env) as connection:
        seed_transactions(
            connection, database="FDM_STACK", schema="PUBLIC", table=name.upper(), rows=BIG_ROWS
        )


def make_table(name: str) -> TableConfig:
    return TableConfig.objects.create(
        name=name,
        snowflake_database="FDM_STACK",
        snowflake_schema="PUBLIC",
        snowflake_table=name.upper(),
        postgres_schema="public",
        postgres_table=name,
        sync_mode="full",
        schedule="manual",
    )


def test_the_stack_runs_a_sync_once_fires_a_schedule_once_survives_a_killed_worker_and_is_scraped(
    stack, snowflake_env
):
    started = time.monotonic()
    name = f"stack_{uuid.uuid4().hex[:8]}"
    seed_source(snowflake_env, name)
    make_table(name)
    _, key = service_key_create(username=f"ci-{uuid.uuid4().hex[:8]}", role=Role.parse("operator"))
    # Due now, then hourly: one firing in the minutes this test lasts, however many clusters run.
    Schedule.objects.create(
        name="stack-due-once",
        func=DUE_FUNC,
        args="1, 2",
        schedule_type=Schedule.HOURLY,
        repeats=-1,
        next_run=timezone.now() - timedelta(seconds=1),
    )

    run_id = check_a_requested_run_is_executed(stack, key, name)
    check_the_schedule_fires_once(stack, name, run_id)
    check_a_killed_worker_leaves_the_others_serving(stack, snowflake_env, key, name)
    check_prometheus_scrapes_fdm(stack, name)
    check_an_alert_fires_for_a_failing_table(stack, key)
    print(f"stack test: {time.monotonic() - started:.1f} s after the processes started")


def check_a_requested_run_is_executed(stack: Stack, key: str, name: str) -> int:
    """A run requested through the API is executed by one of the clusters."""
    status, run = stack.api("POST", "/api/v1/pipeline/runs/", key, {"table": name})
    assert status == 202, run
    run_id = run["id"]
    stack.wait_for(
        lambda: SyncRun.objects.get(pk=run_id).status in RunStatus.terminal(), timeout=120, what="the run"
    )
    record = SyncRun.objects.get(pk=run_id)
    assert record.status == RunStatus.SUCCEEDED, f"{record.error_message}\n{stack.logs()}"
    assert (record.rows_extracted, record.attempt, record.trigger) == (ROWS, 1, "api")
    assert record.executor
    status, body = stack.api("GET", f"/api/v1/pipeline/runs/{run_id}/", key)
    assert (status, body["status"]) == (200, RunStatus.SUCCEEDED)
    return run_id


def check_the_schedule_fires_once(stack: Stack, name: str, run_id: int) -> None:
    """The due schedule fired once, by the scheduler alone; the requested run was executed once."""
    stack.wait_for(lambda: Task.objects.filter(func=DUE_FUNC).exists(), timeout=90, what="the due schedule")
    time.sleep(35)  # two more rounds of every cluster's scheduler loop (about 15 s each)
    assert Task.objects.filter(func=DUE_FUNC).count() == 1
    assert Schedule.objects.get(name="stack-due-once").next_run > timezone.now() + timedelta(minutes=50)
    assert len([task for task in Task.objects.filter(func=EXECUTE_TASK) if task.args == (run_id,)]) == 1
    assert SyncRun.objects.filter(table_name=name).count() == 1
    firing = "from schedule [stack-due-once]"  # django-q2's line when a scheduler creates the task
    fired = {p.name for p in stack.processes if firing in p.log.read_text(errors="replace")}
    assert fired == {"scheduler"}, fired


def check_a_killed_worker_leaves_the_others_serving(
    stack: Stack, snowflake_env: dict, key: str, name: str
) -> None:
    """The cluster running a large sync is killed: the reaper fails the run, the other clusters serve on."""
    big = f"stack_big_{uuid.uuid4().hex[:8]}"
    seed_big_source(snowflake_env, big)
    make_table(big)
    status, run = stack.api("POST", "/api/v1/pipeline/runs/", key, {"table": big})
    assert status == 202, run
    killed_run = stack.wait_for(
        lambda: SyncRun.objects.filter(pk=run["id"], status=RunStatus.RUNNING).exclude(executor="").first(),
        timeout=120,
        what="the large run to start",
    )
    executor_pid = int(killed_run.executor.rsplit(":", 1)[1])
    [victim] = [p for p in stack.processes if p.popen.pid == os.getpgid(executor_pid)]
    victim.stop(signal.SIGKILL)
    stack.processes.remove(victim)  # no longer expected to be alive
    assert SyncRun.objects.get(pk=killed_run.pk).status == RunStatus.RUNNING  # killed before it finished
    # The table's lock goes with the killed worker's session, which PostgreSQL ends once it sees the client
    # gone (a moment later, or at the end of a statement the session was running): until then the run looks
    # alive to the reaper.
    stack.wait_for(
        lambda: not run_sessions(big),
        timeout=60,
        what="the killed worker's database sessions to end",
    )
    # The reaper's rule for runs whose table lock is free, as its schedule applies it once the grace passed.
    later = timezone.now() + timedelta(seconds=settings.FDM_RUN_ORPHAN_GRACE_SECONDS + 1)
    assert [reaped.pk for reaped in reaper.runs_fail_stale(now=later)] == [killed_run.pk]
    reaped = SyncRun.objects.get(pk=killed_run.pk)
    assert (reaped.status, reaped.error_kind) == (RunStatus.FAILED, "transient")
    assert "presumed dead" in reaped.error_message
    status, again = stack.api("POST", "/api/v1/pipeline/runs/", key, {"table": name})
    assert status == 202, again
    stack.wait_for(
        lambda: SyncRun.objects.get(pk=again["id"]).status == RunStatus.SUCCEEDED,
        timeout=120,
        what=f"a run served by the clusters left after {victim.name} was killed",
    )


def run_sessions(table_name: str) -> list[tuple]:
    """The target database sessions of a run of `table_name`: its own and its COPY streams."""
    with psycopg.connect(target_dsn(), autocommit=True) as conn:
        return conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name IN (%s, %s)",
            (f"fdm sync {table_name}", f"fdm copy {table_name}"),
        ).fetchall()


def check_prometheus_scrapes_fdm(stack: Stack, name: str) -> None:
    """Prometheus scraped fdm as job fdm, holds its series, and loaded the alert rules."""
    if not stack.prometheus_url:
        pytest.skip("prometheus is not installed: the scrape was not checked (make test installs it)")
    stack.wait_for(
        lambda: stack.prometheus(
            f'fdm_table_last_run_status{{job="fdm",table="{name}",status="succeeded"}} == 1'
        ),
        timeout=60,
        what="fdm_ series in Prometheus",
    )
    [up] = stack.prometheus('up{job="fdm"}')
    assert up["value"][1] == "1"
    assert stack.prometheus("fdm_collector_up == 1")
    with urllib.request.urlopen(stack.prometheus_url + "/api/v1/rules", timeout=10) as response:
        groups = json.loads(response.read())["data"]["groups"]
    assert {"FdmTableLastRunFailed", "FdmTableStale"} <= {r["name"] for g in groups for r in g["rules"]}


def check_an_alert_fires_for_a_failing_table(stack: Stack, key: str) -> None:
    """A table whose run fails (its source does not exist) sets off FdmTableLastRunFailed in Prometheus."""
    broken = f"stack_broken_{uuid.uuid4().hex[:8]}"
    make_table(broken)
    status, run = stack.api("POST", "/api/v1/pipeline/runs/", key, {"table": broken})
    assert status == 202, run
    stack.wait_for(
        lambda: SyncRun.objects.get(pk=run["id"]).status == RunStatus.FAILED,
        timeout=120,
        what="the failed run",
    )
    firing = stack.wait_for(
        lambda: stack.prometheus(
            f'ALERTS{{alertname="FdmTableLastRunFailed",alertstate="firing",table="{broken}"}}'
        ),
        timeout=60,
        what="FdmTableLastRunFailed to fire",
    )
    assert firing[0]["metric"]["severity"] == "warning"
