"""Poison tasks on a real worker: a table whose source disappeared (terminal every time) and a table whose
publish times out every time (transient every time: a report holds its target longer than the publish lock
timeout). Must hold: the terminal one is failed once and not retried; the transient one is attempted exactly
FDM_SYNC_MAX_ATTEMPTS times, each recorded failed and transient, the last saying no retry is left; meanwhile the
same single worker serves other tables; afterwards nothing is queued, running, locked or staged, and the busy
table syncs as soon as the report lets go.
"""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants
# ruff: noqa: F811 - the imported fixtures are parameters of the tests that use them

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from django_q.models import Schedule

from syncengine import services
from syncengine.choices import ErrorKind, RunStatus, RunTrigger
from syncengine.connections import target_dsn
from syncengine.models import SyncRun
from syncengine.services import RETRY_SCHEDULE_PREFIX
from tests.engine.conftest import SOURCE_DATABASE, SOURCE_SCHEMA, make_table, seed_source, snowflake  # noqa: F401

from .workers_env import cluster, left_behind, wait, waiting_on

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MAX_ATTEMPTS = 3


def _synced(make_table, seed_source, name: str):
    table = make_table(name=name)
    seed_source(table.snowflake_table, rows=10)
    run = services.run_execute(run_id=services.run_create(table=table, trigger=RunTrigger.COMMAND).pk)
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    return table


def test_poison_tasks_are_attempted_a_bounded_number_of_times_while_the_worker_serves_others(
    snowflake_env, test_database_url, make_table, seed_source, snowflake
):
    gone = _synced(make_table, seed_source, "poison_gone")
    busy = _synced(make_table, seed_source, "poison_busy")
    healthy = [_synced(make_table, seed_source, f"poison_healthy_{i}") for i in range(2)]
    snowflake.execute(f"DROP TABLE {SOURCE_DATABASE}.{SOURCE_SCHEMA}.{gone.snowflake_table}")
    seed_source(busy.snowflake_table, rows=5, start=11)
    busy_relation = f'public."{busy.postgres_table}"'
    env = {
        "FDM_PUBLISH_LOCK_TIMEOUT": "1",
        "FDM_RETRY_BACKOFF_SECONDS": "0",  # retries go straight back to the queue (no scheduler pass)
        "FDM_SYNC_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    }

    with (
        tempfile.TemporaryDirectory() as logs,
        cluster(Path(logs) / "q.log", test_database_url, workers=1, **env) as worker,
        psycopg.connect(target_dsn()) as report,
    ):
        report.execute(f"LOCK TABLE {busy_relation} IN ACCESS SHARE MODE")
        began = time.monotonic()
        for table in (gone, busy, healthy[0]):
            services.run_enqueue(table=table, trigger=RunTrigger.API)

        def busy_attempts() -> list[SyncRun]:
            return list(SyncRun.objects.filter(table=busy, trigger=RunTrigger.API).order_by("attempt"))

        wait(
            worker,
            lambda: len(busy_attempts()) == MAX_ATTEMPTS and all(run.is_terminal for run in busy_attempts()),
            timeout=120,
            what=f"{MAX_ATTEMPTS} attempts of the busy table",
        )
        # The worker is still serving: a table queued after all that is run.
        late = services.run_enqueue(table=healthy[1], trigger=RunTrigger.API)
        wait(worker, lambda: SyncRun.objects.get(pk=late.pk).is_terminal, timeout=60, what="the late table")
        poisoned_for = time.monotonic() - began
        assert not waiting_on(busy_relation)
        report.rollback()

    gone_runs = list(SyncRun.objects.filter(table=gone, trigger=RunTrigger.API))
    assert [(run.status, run.error_kind, run.attempt) for run in gone_runs] == [
        (RunStatus.FAILED, ErrorKind.TERMINAL, 1)
    ]
    print(f"\nsource gone: {gone_runs[0].error_message}")
    assert gone.name in gone_runs[0].error_message

    attempts = busy_attempts()
    assert [(run.status, run.error_kind, run.attempt) for run in attempts] == [
        (RunStatus.FAILED, ErrorKind.TRANSIENT, n) for n in range(1, MAX_ATTEMPTS + 1)
    ]
    assert [run.retry_of_id for run in attempts] == [None, *(run.pk for run in attempts[:-1])]
    assert "lock timeout" in attempts[-1].error_message
    assert any(
        f"no retry: attempt {MAX_ATTEMPTS} of {MAX_ATTEMPTS}" in e["message"] for e in attempts[-1].log
    )
    print(f"busy, attempt {MAX_ATTEMPTS}: {attempts[-1].error_message}")
    for table in healthy:
        assert SyncRun.objects.get(table=table, trigger=RunTrigger.API).status == RunStatus.SUCCEEDED
    assert not Schedule.objects.filter(name__startswith=RETRY_SCHEDULE_PREFIX).exists()
    for table in (gone, busy, *healthy):
        assert left_behind(table.name) == {
            "staging": [],
            "lock_free": True,
            "active_runs": 0,
            "queued_tasks": 0,
        }

    # The report let go: the busy table's next run succeeds and brings the 5 new rows.
    after = services.run_execute(run_id=services.run_create(table=busy, trigger=RunTrigger.COMMAND).pk)
    assert after.status == RunStatus.SUCCEEDED, after.error_message
    with psycopg.connect(target_dsn(), autocommit=True) as conn:
        assert conn.execute(f"SELECT count(*) FROM {busy_relation}").fetchone() == (15,)
    print(f"poison and the other tables settled within {poisoned_for:.1f}s of being queued")
