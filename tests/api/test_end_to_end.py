"""End to end through the API: create a table, start a run, and poll it until a real worker cluster
(`manage.py qcluster`) has synced it from the Snowflake emulator into the test database."""

from __future__ import annotations

import time

import psycopg
import pytest
from psycopg import sql

from syncengine.choices import RunStatus
from syncengine.connections import target_dsn
from tests.api.conftest import table_dict

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROWS = 40
RUN_TIMEOUT = 90  # seconds for the worker to take the run and finish it


def test_a_table_created_and_started_by_api_is_synced_by_a_worker(seed_source, qcluster, client_for):
    name = "api_e2e_payments"
    seed_source(name, rows=ROWS)
    operator = client_for("operator")
    body = table_dict(name, primary_key=["TXN_ID"])
    created = operator.post("/api/v1/tables/", body, format="json")
    assert created.status_code == 201, created.json()

    try:
        with qcluster() as cluster:
            started = operator.post("/api/v1/pipeline/runs/", {"table": name}, format="json")
            assert started.status_code == 202, started.json()
            assert started.json()["status"] == RunStatus.QUEUED
            run_id = started.json()["id"]

            deadline = time.monotonic() + RUN_TIMEOUT
            run = started.json()
            while run["status"] not in RunStatus.terminal() and time.monotonic() < deadline:
                cluster.check_alive()
                time.sleep(0.5)
                run = operator.get(f"/api/v1/pipeline/runs/{run_id}/").json()
            assert run["status"] == RunStatus.SUCCEEDED, f"{run}\nqcluster log:\n{cluster.log_tail()}"

        assert (run["rows_extracted"], run["rows_inserted"], run["trigger"]) == (ROWS, ROWS, "api")
        status = operator.get(f"/api/v1/pipeline/tables/{name}/").json()
        assert status["last_success"]["id"] == run_id
        with psycopg.connect(target_dsn(), autocommit=True) as target:
            count = target.execute(sql.SQL("SELECT count(*) FROM public.{}").format(sql.Identifier(name)))
            assert count.fetchone()[0] == ROWS
    finally:
        with psycopg.connect(target_dsn(), autocommit=True) as target:
            target.execute(sql.SQL("DROP TABLE IF EXISTS public.{}").format(sql.Identifier(name)))
