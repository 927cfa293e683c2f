"""Fixtures for the fault matrix: the engine's table and source fixtures, one `qcluster` for the module's
worker cases (a killed worker is replaced by the cluster itself), and the executors a fault strikes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

from syncengine.dev.emulator import emulator_environment
from tests.engine.conftest import (  # noqa: F401 - fixtures, registered by importing them here
    SOURCE_DATABASE,
    SOURCE_SCHEMA,
    keyring,
    make_table,
    snowflake,
    target,
    target_rows,
)
from tests.workers import WORKER_KEYRING, Cluster, stop_cluster


@pytest.fixture
def seed_source(snowflake) -> Callable[..., str]:  # noqa: F811 - the fixture imported above
    """The engine's seeded table shape (TXN_ID key, AMOUNT = TXN_ID + 0.25, CURRENCY, UPDATED_AT one minute
    apart), filled by one generated INSERT: thousands of rows in a fraction of a second."""

    def seed(name: str, *, rows: int = 25, start: int = 1) -> str:
        table = f"{SOURCE_DATABASE}.{SOURCE_SCHEMA}.{name.upper()}"
        snowflake.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (TXN_ID NUMBER(38,0) PRIMARY KEY, AMOUNT NUMBER(18,2), "
            "CURRENCY TEXT, UPDATED_AT TIMESTAMP_NTZ)"
        )
        snowflake.execute(
            f"INSERT INTO {table} SELECT n, n + 0.25, 'EUR', "  # noqa: S608 - the test's own table
            "DATEADD(minute, n, '2026-01-01 00:00:00'::TIMESTAMP_NTZ) "
            f"FROM (SELECT SEQ8() + {int(start)} AS n FROM TABLE(GENERATOR(ROWCOUNT => {int(rows)})))"
        )
        return table

    return seed


def database_url() -> str:
    db = connections["default"].settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgresql://{db['USER']}{password}@{db.get('HOST') or '127.0.0.1'}{port}/{db['NAME']}"


def process_env(snowflake_server: dict, **extra: str) -> dict[str, str]:
    """The environment of a process a fault case starts: the test database, the emulator, a keyring."""
    env = {
        **os.environ,
        **emulator_environment(snowflake_server),
        "DATABASE_URL": database_url(),
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "WARNING",
        # Far longer than any wait below: a dead run's lock request that lingered for its publish's whole lock
        # timeout would fail the case, not pass it late.
        "FDM_PUBLISH_LOCK_TIMEOUT": "300",
    }
    env.setdefault("FDM_ENCRYPTION_KEYS", WORKER_KEYRING)
    env.pop("TARGET_DATABASE_URL", None)
    env.pop("SNOWFLAKE_PRIVATE_KEY_FILE", None)
    return {**env, **extra}


@pytest.fixture(scope="module")
def worker_cluster(django_db_setup, django_db_blocker, snowflake_server) -> Iterator[Cluster]:
    """One `manage.py qcluster` with one worker for a module's worker cases. Killing its worker is the fault;
    the cluster's guard starts another, which takes the retry."""
    log_dir = tempfile.TemporaryDirectory(prefix="fdm-faults-qcluster-")
    log_path = Path(log_dir.name) / "qcluster.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=settings.BASE_DIR,
            env=process_env(snowflake_server, FDM_WORKERS="1", FDM_RETRY_BACKOFF_SECONDS="0"),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield Cluster(process, log_path)
    finally:
        stop_cluster(process)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        log_dir.cleanup()
