"""Two runs of one table at the same moment, through every pair of entry points: `sync_table` (a process of
its own), a worker task (queued to a real qcluster) and the API (`POST /api/v1/pipeline/runs/`, run by a
worker). The first run is held in its publish by a reader's lock, so both are surely alive at once; the second
is then started. Must hold: exactly one runs; the other is recorded skipped, naming the holder (`#id`);
`sync_table` exits 3 when it is the one skipped; the target holds exactly the source's rows; nothing is left
queued, running, locked or staged.
"""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants
# ruff: noqa: F811 - the imported fixtures are parameters of the tests that use them

from __future__ import annotations

import itertools
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path

import psycopg
import pytest
from rest_framework.test import APIClient

from fdm.api.roles import Role
from fdm.apikeys.services import service_key_create
from syncconfig.models import TableConfig
from syncengine import services
from syncengine.choices import RunStatus, RunTrigger
from syncengine.connections import target_dsn
from syncengine.models import SyncRun
from tests.engine.conftest import make_table, seed_source, snowflake  # noqa: F401 - fixtures

from .workers_env import cluster, left_behind, manage, wait, waiting_on

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ENTRIES = ("command", "worker", "api")
EXIT_SKIPPED = 3


class Started:
    """A run started through one entry point: its record (found once it exists) and its process, if any."""

    def __init__(
        self, table: TableConfig, *, after: int, run_id: int | None = None, process=None, exclude=()
    ):
        self.table, self.after, self.run_id, self.process = table, after, run_id, process
        self.exclude = list(exclude)

    def run(self) -> SyncRun | None:
        if self.run_id is not None:
            return SyncRun.objects.get(pk=self.run_id)
        # sync_table records its own run: the first of this table's runs with trigger command after `after`.
        run = (
            SyncRun.objects.filter(table=self.table, trigger=RunTrigger.COMMAND, pk__gt=self.after)
            .exclude(pk__in=self.exclude)
            .order_by("pk")
            .first()
        )
        if run is not None:
            self.run_id = run.pk
        return run


def start(entry: str, table: TableConfig, *, database_url: str, api: APIClient, exclude=()) -> Started:
    after = SyncRun.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    if entry == "command":
        process = manage(database_url, "sync_table", table.name)
        return Started(table, after=after, process=process, exclude=exclude)
    if entry == "worker":
        run = services.run_enqueue(table=table, trigger=RunTrigger.SCHEDULE)
        return Started(table, after=after, run_id=run.pk)
    response = api.post("/api/v1/pipeline/runs/", {"table": table.name}, format="json")
    assert response.status_code == 202, response.content
    return Started(table, after=after, run_id=response.json()["id"])


def nothing_left(table_name: str) -> bool:
    return left_behind(table_name) == {"staging": [], "lock_free": True, "active_runs": 0, "queued_tasks": 0}


def finished(started: Started) -> SyncRun | None:
    run = started.run()
    return run if run is not None and run.is_terminal else None


def test_two_runs_of_one_table_at_once_run_one_and_skip_the_other_naming_it(
    snowflake_env, test_database_url, make_table, seed_source, api_operator
):
    figures = []
    with (
        tempfile.TemporaryDirectory() as logs,
        cluster(Path(logs) / "q.log", test_database_url, workers=2) as q,
    ):
        for first_entry, second_entry in itertools.product(ENTRIES, repeat=2):
            table = make_table(name=f"pair_{first_entry}_{second_entry}_{uuid.uuid4().hex[:6]}")
            seed_source(table.snowflake_table, rows=20)
            done = services.run_execute(
                run_id=services.run_create(table=table, trigger=RunTrigger.COMMAND).pk
            )
            assert done.status == RunStatus.SUCCEEDED, done.error_message
            seed_source(table.snowflake_table, rows=15, start=21)
            relation = f'public."{table.postgres_table}"'

            began = time.monotonic()
            with psycopg.connect(target_dsn()) as reader:
                reader.execute(f"LOCK TABLE {relation} IN ACCESS SHARE MODE")
                first = start(first_entry, table, database_url=test_database_url, api=api_operator)
                wait(q, partial(waiting_on, relation), timeout=90, what="the first run's publish")
                holder = first.run()
                assert holder is not None and holder.status == RunStatus.RUNNING
                second = start(
                    second_entry, table, database_url=test_database_url, api=api_operator, exclude=[holder.pk]
                )
                skipped = wait(q, partial(finished, second), timeout=90, what="the second run")
                if second.process is not None:
                    _, stderr = second.process.communicate(timeout=30)
                    assert second.process.returncode == EXIT_SKIPPED, stderr
                    assert f"#{holder.pk}" in stderr
                reader.rollback()
            ran = wait(q, partial(finished, first), timeout=90, what="the first run")
            if first.process is not None:
                first.process.communicate(timeout=30)
                assert first.process.returncode == 0
            pair = f"{first_entry}+{second_entry}"
            assert ran.status == RunStatus.SUCCEEDED, (pair, ran.error_message)
            assert skipped.status == RunStatus.SKIPPED, (pair, skipped.status, skipped.error_message)
            assert f"#{holder.pk}" in skipped.skip_reason, (pair, skipped.skip_reason)
            assert SyncRun.objects.filter(table=table, status=RunStatus.SUCCEEDED).count() == 2  # setup + ran
            with psycopg.connect(target_dsn(), autocommit=True) as conn:
                rows = conn.execute(f"SELECT count(*), count(DISTINCT txn_id) FROM {relation}").fetchone()
            assert rows == (35, 35), pair
            wait(q, partial(nothing_left, table.name), timeout=30, what="nothing left behind")
            figures.append(f"{pair}: skipped '{skipped.skip_reason}' ({time.monotonic() - began:.1f}s)")
    print("\n" + "\n".join(figures))


@pytest.fixture
def api_operator(db) -> APIClient:
    _, key = service_key_create(username=f"operator-{uuid.uuid4().hex[:8]}", role=Role.parse("operator"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client
