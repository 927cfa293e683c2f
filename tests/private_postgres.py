"""A PostgreSQL cluster of a test's own, which the test may restart, stop and start: the shared server on
127.0.0.1:5432 serves other tests at the same time and is never touched that way.

Built from the binaries the `pgserver` package ships (initdb, pg_ctl). When the tests run as root, the cluster
runs as pgserver's own system user, as PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from pgserver._commands import POSTGRES_BIN_PATH
from pgserver.utils import ensure_user_exists

from syncengine.dev.emulator import free_port

SYSTEM_USER = "pgserver"


class PrivatePostgres:
    """One cluster on 127.0.0.1:`port`, trust authentication, fsync off (its data is thrown away)."""

    def __init__(self, root: Path):
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            ensure_user_exists(SYSTEM_USER)
            entry = pwd.getpwnam(SYSTEM_USER)
            os.chown(root, entry.pw_uid, entry.pw_gid)
            self._as_user = ["runuser", "-u", SYSTEM_USER, "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as_user, *args], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._run(str(POSTGRES_BIN_PATH / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.root / "log"), "-w", "start",
        )  # fmt: skip

    def stop(self, mode: str = "immediate") -> None:
        """`immediate`: every backend is killed at once, as in a crash; connections see them drop."""
        self._run(str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def query(self, sql: str, params: tuple | None = None, *, database: str = "fdm") -> list[tuple]:
        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started cluster with an empty database `fdm`; stopped and deleted afterwards."""
    root = Path(tempfile.mkdtemp(prefix="fdm-private-pg-"))
    cluster = PrivatePostgres(root)
    try:
        cluster.init()
        cluster.start()
        cluster.query("CREATE DATABASE fdm", database="postgres")
        yield cluster
    finally:
        try:
            cluster.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped by the test
        shutil.rmtree(root, ignore_errors=True)
