"""End to end through the API: create a table with encrypted columns, start a run, poll it until a real worker
cluster (`manage.py qcluster`) has synced it from the Snowflake emulator into the test database, then read its
data decrypted as an admin and masked as a viewer."""

from __future__ import annotations

import time

import psycopg
import pytest
from psycopg import sql

from syncengine.choices import RunStatus
from syncengine.connections import target_dsn
from syncengine.models import DecryptedRead
from syncengine.pipeline.protection.keyring import Keyring
from tests.api.conftest import table_dict

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROWS = 40
RUN_TIMEOUT = 90  # seconds for the worker to take the run and finish it


def test_a_table_created_and_started_by_api_is_synced_by_a_worker_and_read_back(
    seed_source, qcluster, client_for, monkeypatch
):
    name = "api_e2e_payments"
    seed_source(name, rows=ROWS)
    monkeypatch.setenv(
        "FDM_ENCRYPTION_KEYS", Keyring.generate("e2e").format()
    )  # the worker's and this process's
    operator = client_for("operator")
    body = table_dict(
        name,
        primary_key=["TXN_ID"],
        encryption={"columns": ["AMOUNT", "CURRENCY"], "searchable": ["CURRENCY"]},
    )
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

        admin = client_for("admin")
        page = admin.get(f"/api/v1/data/{name}/", {"page_size": 15})
        assert page.status_code == 200, page.json()
        first = page.json()
        assert first["results"][0] == {
            "txn_id": "1",
            "amount": "1.25",
            "currency": "EUR",
            "updated_at": "2026-01-01T00:01:00",
        }
        assert first["decrypted_columns"] == ["amount", "currency"] and first["masked_columns"] == []
        rows = first["results"]
        url = first["next"]
        while url:
            following = admin.get(url).json()
            rows.extend(following["results"])
            url = following["next"]
        assert [row["txn_id"] for row in rows] == [str(i) for i in range(1, ROWS + 1)]
        assert DecryptedRead.objects.filter(table_name=name, via="api").count() == 3

        search = {"filters": {"currency": "EUR"}, "page_size": 1000}
        found = admin.post(f"/api/v1/data/{name}/search/", search, format="json").json()
        assert len(found["results"]) == ROWS

        viewer = client_for("viewer")
        masked = viewer.get(f"/api/v1/data/{name}/", {"page_size": 2}).json()
        assert masked["results"][0]["amount"] == "[encrypted]" and masked["results"][0]["txn_id"] == "1"
        assert masked["masked_columns"] == ["amount", "currency"]
        refused = viewer.post(f"/api/v1/data/{name}/search/", search, format="json")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
        assert DecryptedRead.objects.filter(table_name=name).count() == 4
    finally:
        with psycopg.connect(target_dsn(), autocommit=True) as target:
            target.execute(sql.SQL("DROP TABLE IF EXISTS public.{}").format(sql.Identifier(name)))
