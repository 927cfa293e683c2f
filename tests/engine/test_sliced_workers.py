"""A sliced run across two real django-q2 clusters on Redis, one of them killed (SIGKILL of its process group)
mid-slice: the slice is staged again by the other, finished slices are not, and the run succeeds once with the
target equal to the source."""

from __future__ import annotations

import os
import signal
import time
from contextlib import nullcontext
from datetime import timedelta

import psycopg
import pytest
import redis
from django.conf import settings
from django.utils import timezone
from django_q.conf import Conf

from syncengine import reaper, services
from syncengine.choices import RunStatus, RunTrigger, SliceStatus
from syncengine.connections import target_dsn
from syncengine.dev import sampledata
from syncengine.models import RunSlice, SyncRun
from syncengine.pipeline.locks import held_table_lock_keys, table_lock_key
from syncengine.pipeline.sliced import slice_lock_key
from tests.engine.conftest import SOURCE_DATABASE, SOURCE_SCHEMA
from tests.engine.test_sliced_runs import leases, leftover_staging, source_totals, target_totals

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SEED_CHUNK = 1_000_000
REDIS_URL = os.environ.get("FDM_TEST_REDIS_URL", "redis://127.0.0.1:6379/6")


@pytest.fixture
def redis_broker(monkeypatch):
    """django-q2 on Redis, in this process (which enqueues) and in the clusters it starts."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip(f"no Redis at {REDIS_URL}")
    client.flushdb()
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", REDIS_URL)
    yield
    client.flushdb()


def in_cluster(cluster, executor: str) -> bool:
    """Is the process named `host:pid` one of this cluster's (its process group)?"""
    try:
        return os.getpgid(int(executor.rsplit(":", 1)[1])) == cluster.process.pid
    except (ProcessLookupError, ValueError, IndexError):
        return False


def kill_group(cluster) -> None:
    os.killpg(cluster.process.pid, signal.SIGKILL)
    cluster.process.wait(timeout=30)


def wait_until(condition, *, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def running_slice_of(cluster, run: SyncRun) -> RunSlice | None:
    pieces = RunSlice.objects.filter(run=run, status=SliceStatus.RUNNING)
    return next((piece for piece in pieces if in_cluster(cluster, piece.executor)), None)


def settle_the_dead_slice(run: SyncRun, piece: RunSlice) -> None:
    """The reaper, as its schedule would run it once the dead slice has been silent long enough."""
    key = slice_lock_key(run.table_name, str(run.pk), piece.number)
    with psycopg.connect(target_dsn(), autocommit=True) as conn:
        wait_until(
            lambda: key not in held_table_lock_keys(conn), timeout=30, what="the dead slice's session to end"
        )
    soon = timezone.now() + timedelta(seconds=settings.FDM_RUN_ORPHAN_GRACE_SECONDS + 1)
    reaper.runs_fail_stale(now=soon)


def sliced_run_with_a_killed_worker(qcluster, table, *, hold_slices: bool) -> tuple[SyncRun, RunSlice, float]:
    """Run `table` on two clusters and kill one mid-slice; returns the run, the killed slice, and seconds.

    `hold_slices`: take the table's advisory lock as soon as the slices are set up, so that the slices the
    workers claim wait in their first critical section (small tables stage faster than a kill can be aimed);
    otherwise a slice is killed once it has reported staged rows.
    """
    with qcluster() as first, qcluster() as second:
        began = time.monotonic()
        run = services.run_enqueue(table=table, trigger=RunTrigger.API)
        with psycopg.connect(target_dsn(), autocommit=True) as holder:
            if hold_slices:
                wait_until(
                    lambda: SyncRun.objects.filter(pk=run.pk, stage="slices").exists(),
                    timeout=120,
                    what="the run to set up its slices",
                    interval=0.01,
                )
                holder.execute("SELECT pg_advisory_lock(%s)", (table_lock_key(table.name),))
                victim = wait_until(
                    lambda: running_slice_of(second, run), timeout=60, what="a slice in the second"
                )
            else:
                victim = wait_until(
                    lambda: (piece := running_slice_of(second, run)) and piece.rows > 0 and piece,
                    timeout=600,
                    what="the second cluster to stage rows of a slice",
                )
            kill_group(second)
            holder.close()  # the slices waiting for the table's lock go on
        assert RunSlice.objects.get(pk=victim.pk).status == SliceStatus.RUNNING  # killed mid-slice
        settle_the_dead_slice(run, victim)
        run = first.wait_for(
            lambda: SyncRun.objects.filter(pk=run.pk, status__in=RunStatus.terminal()).first(),
            timeout=900,
            what="the sliced run to finish on the first cluster",
        )
        elapsed = time.monotonic() - began
        assert run.status == RunStatus.SUCCEEDED, f"{run.error_message}\n{first.log_tail()}"
    return run, RunSlice.objects.get(pk=victim.pk), elapsed


def check_exact_and_once(table, run: SyncRun, victim: RunSlice, snowflake, target, slices: int) -> None:
    assert list(SyncRun.objects.filter(table=table).values_list("status", "attempt")) == [
        (RunStatus.SUCCEEDED, 1)
    ]
    pieces = list(run.slices.order_by("number"))
    assert [piece.status for piece in pieces] == [SliceStatus.DONE] * slices
    assert victim.attempt == 2 and victim.status == SliceStatus.DONE  # the killed slice, staged again
    # No finished slice was staged twice. (A slice may have a second attempt for another reason on a loaded
    # machine: waiting past its lock timeout for the table lock the test held is a transient failure.)
    run.refresh_from_db()
    staged = [entry["message"] for entry in run.log if entry["message"].endswith(" staged")]
    assert sorted(staged) == sorted(f"slice {piece.number} staged" for piece in pieces)
    retried = [entry["message"] for entry in run.log if " failed: " in entry["message"]]
    assert sum(piece.attempt for piece in pieces) == slices + 1 + len(retried), retried
    assert target_totals(target, table) == source_totals(snowflake, table.snowflake_table)
    assert leftover_staging(target, table) == [] and leases(target, table) == []


def seeded_table(make_table, snowflake, *, rows: int, slices: int):
    table = make_table(parallel_slices=slices)
    where = {"database": SOURCE_DATABASE, "schema": SOURCE_SCHEMA, "table": table.snowflake_table}
    # In chunks of a million: one INSERT of millions can outlast the connector's 60 s read timeout.
    sampledata.seed_transactions(snowflake.connection, rows=min(rows, SEED_CHUNK), **where)
    for first_id in range(SEED_CHUNK + 1, rows + 1, SEED_CHUNK):
        sampledata.insert_transactions(
            snowflake.connection, rows=min(SEED_CHUNK, rows - first_id + 1), first_id=first_id, **where
        )
    return table


def test_a_worker_killed_mid_slice_is_replaced_and_the_run_succeeds_once(
    redis_broker, qcluster, make_table, snowflake, target
):
    table = seeded_table(make_table, snowflake, rows=60_000, slices=4)
    run, victim, _ = sliced_run_with_a_killed_worker(qcluster, table, hold_slices=True)
    check_exact_and_once(table, run, victim, snowflake, target, slices=4)


@pytest.mark.load
def test_5m_rows_over_two_workers_one_killed_mid_slice(redis_broker, qcluster, make_table, snowflake, target):
    table = seeded_table(make_table, snowflake, rows=5_000_000, slices=8)
    run, victim, elapsed = sliced_run_with_a_killed_worker(qcluster, table, hold_slices=False)
    check_exact_and_once(table, run, victim, snowflake, target, slices=8)
    print(f"\n5,000,000 rows, 8 slices, two workers (one killed mid-slice): {elapsed:.0f} s")


def timed_run(qcluster, table, *, clusters: int) -> float:
    """Seconds from the request to the sliced run's success on `clusters` clusters of one worker each."""
    with qcluster() as first, qcluster() if clusters > 1 else nullcontext():
        began = time.monotonic()
        run = services.run_enqueue(table=table, trigger=RunTrigger.API)
        run = first.wait_for(
            lambda: SyncRun.objects.filter(pk=run.pk, status__in=RunStatus.terminal()).first(),
            timeout=1200,
            what="the sliced run to finish",
        )
        assert run.status == RunStatus.SUCCEEDED, f"{run.error_message}\n{first.log_tail()}"
        elapsed = time.monotonic() - began
        print(
            f"\n{clusters} worker(s): {elapsed:.0f} s; worker-seconds extract {run.extract_seconds:.0f}, "
            f"transform {run.transform_seconds:.0f}, load {run.load_seconds:.0f}; publish {run.publish_seconds:.0f} s"
        )
        return elapsed


@pytest.mark.load
def test_5m_rows_sliced_over_two_workers_and_over_one(redis_broker, qcluster, make_table, snowflake, target):
    """Figures for docs/pipeline.md (printed; nothing timed is asserted)."""
    table = seeded_table(make_table, snowflake, rows=5_000_000, slices=8)
    two = timed_run(qcluster, table, clusters=2)
    one = timed_run(qcluster, table, clusters=1)
    assert target_totals(target, table) == source_totals(snowflake, table.snowflake_table)
    print(f"\n5,000,000 rows, 8 slices: two workers {two:.0f} s, one worker {one:.0f} s ({one / two:.2f}x)")
