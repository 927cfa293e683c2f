"""Worker clusters for the fault tests: `manage.py qcluster` with a chosen number of workers and broker, and
helpers that read what a run left behind (queued or running runs, queued tasks, held locks, staging tables)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings

from syncengine.connections import target_dsn
from syncengine.pipeline.load import STAGING_SCHEMA, staging_prefix
from syncengine.pipeline.locks import try_lock_table, unlock_table
from tests.workers import WORKER_KEYRING, Cluster, stop_cluster


def worker_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "INFO"}
    env.setdefault("FDM_ENCRYPTION_KEYS", WORKER_KEYRING)
    env.pop("TARGET_DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env.update(extra)
    return env


@contextmanager
def cluster(log_path: Path, database_url: str, *, workers: int = 1, **extra: str) -> Iterator[Cluster]:
    """A qcluster process (its own process group) with `workers` workers; stopped afterwards."""
    env = worker_env(database_url, FDM_WORKERS=str(workers), **extra)
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield Cluster(process, log_path)
    finally:
        stop_cluster(process)


def manage(database_url: str, *args: str, **extra: str) -> subprocess.Popen:
    """Start `manage.py ARGS` on the test database; its stderr is kept."""
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=worker_env(database_url, LOG_LEVEL="CRITICAL", **extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def query_target(statement: str, params: tuple | None = None) -> list[tuple]:
    with psycopg.connect(target_dsn(), autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def waiting_on(relation: str) -> list[tuple]:
    """Sessions waiting for a lock on `relation` (a run's publish held up by a reader)."""
    return query_target(
        "SELECT pid FROM pg_locks WHERE relation = to_regclass(%s) AND NOT granted", (relation,)
    )


def left_behind(table_name: str) -> dict[str, Any]:
    """What runs of `table_name` left: staging tables, whether its lock is held, queued or running runs,
    tasks still in the ORM broker's queue, and tasks of the Redis broker when one is given."""
    from django_q.models import OrmQ

    from syncengine.choices import RunStatus
    from syncengine.models import SyncRun

    prefix = staging_prefix(table_name)
    staging = query_target(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND starts_with(c.relname, %s)",
        (STAGING_SCHEMA, prefix),
    )
    with psycopg.connect(target_dsn(), autocommit=True) as conn:
        lock_free = try_lock_table(conn, table_name)
        if lock_free:  # given back at once, not left to the session's end, which a next run may beat
            unlock_table(conn, table_name)
    active = SyncRun.objects.filter(
        table_name=table_name, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]
    ).count()
    return {
        "staging": [name for (name,) in staging],
        "lock_free": lock_free,
        "active_runs": active,
        "queued_tasks": OrmQ.objects.count(),
    }


def wait(cluster: Cluster | None, condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if cluster is not None:
            cluster.check_alive()
        time.sleep(0.2)
    tail = cluster.log_tail() if cluster is not None else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")
