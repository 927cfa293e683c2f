"""Two worker clusters on the Redis broker (REDIS_URL); one is killed outright (SIGKILL of its process group)
while it runs a table. Must hold: the other cluster keeps serving other tables; the target keeps its old rows;
the reaper fails the killed run, drops its staging table and queues a retry, which the surviving cluster runs
to success; the target then holds exactly the source's rows; nothing is left queued (in Redis or in fdm),
running, locked or staged.

The tests use Redis database 5 of the server on 127.0.0.1 (FDM_TEST_REDIS_URL overrides it) and empty it first;
they are skipped when no Redis answers there.
"""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants
# ruff: noqa: F811 - the imported fixtures are parameters of the tests that use them

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from syncengine import services
from syncengine.choices import RunStatus, RunTrigger
from syncengine.connections import target_dsn
from syncengine.models import SyncRun
from tests.engine.conftest import make_table, seed_source, snowflake  # noqa: F401 - fixtures

from .workers_env import cluster, left_behind, wait, waiting_on, worker_env

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REDIS_URL = os.environ.get("FDM_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")


@pytest.fixture
def redis_url() -> Iterator[str]:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.flushdb()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    yield REDIS_URL
    client.flushdb()


def redis_queued(url: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    return sum(client.llen(key) for key in client.keys("django_q:*:q"))


def on_redis(database_url: str, redis_url: str, code: str) -> str:
    """Run `code` in `manage.py shell` with the Redis broker (the test process itself uses the ORM one)."""
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=settings.BASE_DIR,
        env=worker_env(
            database_url,
            REDIS_URL=redis_url,
            LOG_LEVEL="CRITICAL",
            FDM_RUN_ORPHAN_GRACE_SECONDS="0",  # the killed run's session is gone: no need to wait for it
            FDM_RETRY_BACKOFF_SECONDS="0",  # its retry goes straight to the queue
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


def enqueue(database_url: str, redis_url: str, *tables) -> list[int]:
    ids = ",".join(str(table.pk) for table in tables)
    out = on_redis(
        database_url,
        redis_url,
        "from syncconfig.models import TableConfig; from syncengine import services; "
        f"print(*[services.run_enqueue(table=TableConfig.objects.get(pk=pk), trigger='api').pk for pk in [{ids}]])",
    )
    return [int(pk) for pk in out.splitlines()[-1].split()]


def test_a_killed_cluster_on_redis_leaves_the_other_serving_and_its_run_is_retried(
    snowflake_env, test_database_url, redis_url, make_table, seed_source
):
    victim = make_table(name="redis_victim")
    seed_source(victim.snowflake_table, rows=20)
    first = services.run_execute(run_id=services.run_create(table=victim, trigger=RunTrigger.COMMAND).pk)
    assert first.status == RunStatus.SUCCEEDED, first.error_message
    seed_source(victim.snowflake_table, rows=30, start=21)
    others = [make_table(name=f"redis_other_{i}") for i in range(3)]
    for table in others:
        seed_source(table.snowflake_table, rows=5)
    relation = f'public."{victim.postgres_table}"'

    with tempfile.TemporaryDirectory() as logs:
        clusters = {}
        with (
            cluster(Path(logs) / "a.log", test_database_url, REDIS_URL=redis_url) as a,
            cluster(Path(logs) / "b.log", test_database_url, REDIS_URL=redis_url, FDM_SCHEDULER="false") as b,
        ):
            clusters = {a.process.pid: a, b.process.pid: b}
            with psycopg.connect(target_dsn()) as report:
                report.execute(f"LOCK TABLE {relation} IN ACCESS SHARE MODE")
                (run_id,) = enqueue(test_database_url, redis_url, victim)
                wait(None, lambda: waiting_on(relation), timeout=90, what="the victim's publish")
                run = SyncRun.objects.get(pk=run_id)
                worker_pid = int(run.executor.rsplit(":", 1)[1])
                killed = clusters.pop(os.getpgid(worker_pid))
                survivor = next(iter(clusters.values()))
                os.killpg(killed.process.pid, signal.SIGKILL)
                killed_at = time.monotonic()
                killed.process.wait(timeout=30)
                report.rollback()
            wait(survivor, lambda: not waiting_on(relation), timeout=30, what="the killed session to end")
            assert SyncRun.objects.get(pk=run_id).status == RunStatus.RUNNING
            with psycopg.connect(target_dsn(), autocommit=True) as conn:
                assert conn.execute(f"SELECT count(*) FROM {relation}").fetchone() == (20,)

            # The survivor serves the other tables.
            other_ids = enqueue(test_database_url, redis_url, *others)
            wait(
                survivor,
                lambda: all(SyncRun.objects.get(pk=pk).is_terminal for pk in other_ids),
                timeout=90,
                what="the other tables' runs",
            )
            served = SyncRun.objects.filter(pk__in=other_ids)
            assert {r.status for r in served} == {RunStatus.SUCCEEDED}
            assert {os.getpgid(int(r.executor.rsplit(":", 1)[1])) for r in served} == {survivor.process.pid}

            # The reaper (here at once, as its orphan grace is set to 0) fails the run and queues a retry.
            assert (
                on_redis(
                    test_database_url,
                    redis_url,
                    "from syncengine import reaper; print(len(reaper.runs_fail_stale()))",
                ).splitlines()[-1]
                == "1"
            )
            reaped = SyncRun.objects.get(pk=run_id)
            assert reaped.status == RunStatus.FAILED and "presumed dead" in reaped.error_message
            retry = wait(
                survivor,
                lambda: SyncRun.objects.filter(retry_of_id=run_id, status=RunStatus.SUCCEEDED).first(),
                timeout=90,
                what="the retry to succeed",
            )
            healthy_after = time.monotonic() - killed_at

    assert retry.attempt == 2
    with psycopg.connect(target_dsn(), autocommit=True) as conn:
        assert conn.execute(f"SELECT count(*), count(DISTINCT txn_id) FROM {relation}").fetchone() == (50, 50)
    for table in (victim, *others):
        assert left_behind(table.name) == {
            "staging": [],
            "lock_free": True,
            "active_runs": 0,
            "queued_tasks": 0,
        }
    assert redis_queued(redis_url) == 0
    print(
        f"\nkilled run: {reaped.error_message}\nhealthy (retry succeeded) {healthy_after:.1f}s after the kill"
    )
