"""The target's disk fills up while a run stages its rows, and while it publishes them.

A private PostgreSQL cluster (tests/private_postgres.py) with a tablespace on a small tmpfs: the staging
table, the target table or both live there. Must hold: the run fails with a message that names the table and
says the disk is full; the target keeps its old rows (a reader polling it throughout never sees fewer); the
staging table is dropped and the table's lock is free; once space is freed (the tmpfs is made bigger) the
next run succeeds and the target holds exactly the source's rows. Mounting a tmpfs needs root.
"""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants
# ruff: noqa: F811 - the imported fixtures are parameters of the tests that use them

from __future__ import annotations

import os
import pwd
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pgserver.utils import ensure_user_exists

from syncengine.pipeline.errors import PipelineError, TransientError
from syncengine.pipeline.postgres import classify_postgres_error
from syncengine.pipeline.runner import run_sync
from tests.private_postgres import SYSTEM_USER, PrivatePostgres, private_postgres

from .pipeline_fixtures import (  # noqa: F401 - fixtures
    leftovers,
    make_spec,
    settings,
    source,
    source_connection,
)

pytestmark = pytest.mark.faults

SMALL_MB = 8
ROW_TEXT = 200  # characters of each row's note: 60,000 rows are about 14 MB, far more than the tablespace


def test_disk_full_is_a_transient_error_that_says_so():
    error = classify_postgres_error(psycopg.errors.DiskFull("could not extend file"), table="orders")
    assert isinstance(error, TransientError)
    assert str(error) == "orders: the target database is out of disk space: could not extend file"


class SmallDisk:
    """A tmpfs mounted at `path`, owned by the cluster's system user; `resize` frees or takes space."""

    def __init__(self, path: Path):
        self.path = path

    def resize(self, megabytes: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={megabytes}m", str(self.path)], check=True)


@pytest.fixture(scope="module")
def small_disk() -> Iterator[tuple[PrivatePostgres, SmallDisk]]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the target's tablespace needs root")
    mount_point = Path(tempfile.mkdtemp(prefix="fdm-small-disk-"))
    ensure_user_exists(SYSTEM_USER)
    user = pwd.getpwnam(SYSTEM_USER)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SMALL_MB}m,mode=0700,uid={user.pw_uid},gid={user.pw_gid}",
         "tmpfs", str(mount_point)],
        check=True,
    )  # fmt: skip
    try:
        with private_postgres() as cluster:
            cluster.query(f"CREATE TABLESPACE small LOCATION '{mount_point}'")
            yield cluster, SmallDisk(mount_point)
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)
        mount_point.rmdir()


def _fill_source(source, table: str, *, rows: int, start: int = 1) -> None:
    source.sql(
        f"INSERT INTO {table} SELECT seq4() + {start}, repeat('x', {ROW_TEXT}) "
        f"FROM TABLE(GENERATOR(ROWCOUNT => {rows}))"
    )


class Reader:
    """Counts the target's rows over and over from its own connection while a run goes on."""

    def __init__(self, dsn: str, relation: str):
        self.dsn, self.relation = dsn, relation
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self._stop.is_set():
                (count,) = conn.execute(f"SELECT count(*) FROM {self.relation}").fetchall()[0]
                self.seen.add(count)
                time.sleep(0.02)

    def __enter__(self) -> Reader:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def _run_until_disk_full(spec, settings, cluster: PrivatePostgres, stages: list[str]) -> PipelineError:
    def progress(stage: str, rows: int) -> None:
        if not stages or stages[-1] != stage:
            stages.append(stage)

    with pytest.raises(PipelineError) as raised:
        run_sync(spec, source=settings, target_dsn=cluster.url("fdm"), on_progress=progress)
    return raised.value


@pytest.mark.parametrize("where", ["staging", "publish"])
def test_a_full_disk_fails_the_run_keeps_the_target_and_the_next_run_recovers(
    where, small_disk, source, make_spec, settings
):
    cluster, disk = small_disk
    disk.resize(SMALL_MB)
    name = f"disk_{where}"
    table = source.table(name.upper())
    source.sql(f"CREATE TABLE {table} (ID NUMBER(38,0), NOTE TEXT, PRIMARY KEY (ID))")
    _fill_source(source, table, rows=1000)
    spec = make_spec(name.upper(), batch_size=5000, primary_key=("ID",))
    dsn = cluster.url("fdm")
    # The first run creates the target on the small tablespace; for the publish case the staging table then
    # goes to the default one, so the rows stage and only the publish's copy of them fills the disk.
    cluster.query("ALTER DATABASE fdm SET default_tablespace = small")
    run_sync(spec, source=settings, target_dsn=dsn)
    if where == "publish":
        cluster.query("ALTER DATABASE fdm RESET default_tablespace")
    _fill_source(source, table, rows=60000, start=1001)

    stages: list[str] = []
    with Reader(dsn, f"public.{name}") as reader:
        began = time.monotonic()
        error = _run_until_disk_full(spec, settings, cluster, stages)
        failed_after = time.monotonic() - began

    print(f"\n{where}: {type(error).__name__} terminal={error.terminal} after {failed_after:.1f}s: {error}")
    print(f"stages {stages}; a reader saw counts {sorted(reader.seen)}")
    assert isinstance(error, TransientError) and error.table == spec.name
    assert "out of disk space" in str(error) and "No space left on device" in str(error)
    assert ("publish" in stages) == (where == "publish"), stages
    assert reader.seen == {1000}
    assert cluster.query(f"SELECT count(*) FROM public.{name}") == [(1000,)]
    query = lambda sql, params=None: cluster.query(sql, params)  # noqa: E731
    assert leftovers(query, dsn, name) == {"staging": [], "lock_free": True}

    disk.resize(64)  # space is back
    result = run_sync(spec, source=settings, target_dsn=dsn)
    healthy_after = time.monotonic() - began
    assert result.rows_inserted == 61000
    assert cluster.query(f"SELECT count(*), count(DISTINCT id), min(id), max(id) FROM public.{name}") == [
        (61000, 61000, 1, 61000)
    ]
    print(f"healthy {healthy_after:.1f}s after the failing run started")
    cluster.query("ALTER DATABASE fdm RESET default_tablespace")
    cluster.query(f"DROP TABLE public.{name}")
