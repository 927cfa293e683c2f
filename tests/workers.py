"""A real django-q2 cluster (`manage.py qcluster`) for tests about workers: started on pytest-django's test
database and the Snowflake emulator, stopped as one process group afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connections

WORKER_KEYRING = "tests-workers:" + "A" * 43  # 32 zero bytes: a fixed key for test workers only


class Cluster:
    """A `manage.py qcluster` process and its log."""

    def __init__(self, process: subprocess.Popen, log_path: Path):
        self.process = process
        self.log_path = log_path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"qcluster exited (status {self.process.returncode}):\n{self.log_tail()}")

    def wait_for(self, condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            self.check_alive()
            time.sleep(0.2)
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what}; qcluster log:\n{self.log_tail()}"
        )


def stop_cluster(process: subprocess.Popen) -> None:
    """Ask the cluster to stop (it stops its own workers); if it hangs, kill the process group it leads."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        # The leader is still alive, so the group id is still this cluster's.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture
def test_database_url() -> str:
    """A URL for the database pytest-django set up, for processes started by a test (which must commit
    what those processes are to see: `transactional_db`)."""
    db = connections["default"].settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgresql://{db['USER']}{password}@{host}{port}/{db['NAME']}"


@pytest.fixture
def qcluster(snowflake_env, test_database_url) -> Iterator[Callable[[], Any]]:
    """Start `manage.py qcluster` with one worker on the test database and the emulator; stopped afterwards."""
    started: list[Cluster] = []
    log_dir = tempfile.TemporaryDirectory(prefix="fdm-qcluster-")

    @contextmanager
    def start() -> Iterator[Cluster]:
        log_path = Path(log_dir.name) / f"qcluster-{len(started)}.log"
        env = {**os.environ, "DATABASE_URL": test_database_url, "FDM_WORKERS": "1", "PYTHONUNBUFFERED": "1"}
        # Workers refuse to start without a keyring when a table encrypts (the demo's accounts do); a test
        # that encrypts sets its own, which this keeps.
        if not env.get("FDM_ENCRYPTION_KEYS") and not env.get("FDM_ENCRYPTION_KEYS_FILE"):
            env["FDM_ENCRYPTION_KEYS"] = WORKER_KEYRING
        env.pop("TARGET_DATABASE_URL", None)
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"],
                cwd=settings.BASE_DIR,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as one, nothing else touched
            )
        cluster = Cluster(process, log_path)
        started.append(cluster)
        try:
            yield cluster
        finally:
            stop_cluster(process)

    yield start
    for cluster in started:
        stop_cluster(cluster.process)
    log_dir.cleanup()
