"""Reconciling through the API: POST answers 202 with the queued reconciliation, a real worker cluster runs it,
and GET reads its result; the table's status shows the light check of its latest run."""

from __future__ import annotations

import time

import pytest
from django_q.models import OrmQ

from syncconfig import services as config_services
from syncengine.choices import ReconciliationStatus, RunStatus
from tests.api.conftest import table_dict

RUN_TIMEOUT = 90  # seconds for the worker to take the task and finish it


@pytest.mark.django_db
def test_reconcile_only_enqueues_and_answers_202(operator, viewer, django_capture_on_commit_callbacks):
    config_services.table_save_document(document=table_dict("ledger"))
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post("/api/v1/pipeline/tables/ledger/reconcile/", {"deep": True}, format="json")

    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["status"], body["deep"], body["trigger"], body["table"]) == ("queued", True, "api", "ledger")
    assert OrmQ.objects.count() == 1
    assert viewer.get(f"/api/v1/pipeline/reconciliations/{body['id']}/").json()["status"] == "queued"
    listed = viewer.get("/api/v1/pipeline/reconciliations/", {"table": "ledger"}).json()
    assert [each["id"] for each in listed["results"]] == [body["id"]]
    assert viewer.post("/api/v1/pipeline/tables/ledger/reconcile/", {}, format="json").status_code == 403
    assert operator.post("/api/v1/pipeline/tables/nope/reconcile/", {}, format="json").status_code == 404


def _wait(client, url: str, terminal: frozenset[str], cluster) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT
    body = client.get(url).json()
    while body["status"] not in terminal and time.monotonic() < deadline:
        cluster.check_alive()
        time.sleep(0.5)
        body = client.get(url).json()
    return body


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_the_reconciliation_and_get_reads_its_result(seed_source, qcluster, client_for):
    name = "api_reconcile_ledger"
    seed_source(name, rows=20)
    operator = client_for("operator")
    assert (
        operator.post("/api/v1/tables/", table_dict(name, primary_key=["TXN_ID"]), format="json").status_code
        == 201
    )

    with qcluster() as cluster:
        run = operator.post("/api/v1/pipeline/runs/", {"table": name}, format="json").json()
        run = _wait(operator, f"/api/v1/pipeline/runs/{run['id']}/", RunStatus.terminal(), cluster)
        assert run["status"] == RunStatus.SUCCEEDED, cluster.log_tail()
        assert run["reconciliation_status"] == "equal"
        assert operator.get(f"/api/v1/pipeline/tables/{name}/").json()["reconciliation_status"] == "equal"

        started = operator.post(f"/api/v1/pipeline/tables/{name}/reconcile/", {"deep": True}, format="json")
        assert started.status_code == 202
        url = f"/api/v1/pipeline/reconciliations/{started.json()['id']}/"
        done = _wait(operator, url, ReconciliationStatus.terminal(), cluster)

    assert done["status"] == ReconciliationStatus.EQUAL, f"{done}\n{cluster.log_tail()}"
    assert (done["rows_compared"], done["rows_target"], done["differences_found"]) == (20, 20, 0)
    assert done["details"]["queries_source"] > 0
