"""Pipeline endpoints: starting a run only enqueues it; runs read back, filter, cancel; per-table status."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.models import OrmQ

from syncconfig import services as config_services
from syncengine import services
from syncengine.choices import RunStatus, RunTrigger
from syncengine.models import SyncRun
from tests.api.conftest import error_of, table_dict

pytestmark = pytest.mark.django_db


@pytest.fixture
def table():
    return config_services.table_save_document(document=table_dict("payments", freshness_sla="1h"))


def test_starting_a_run_enqueues_it_and_answers_202_with_the_queued_run(
    operator, table, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(
            "/api/v1/pipeline/runs/", {"table": "payments", "full_refresh": True}, format="json"
        )
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "queued" and body["table"] == "payments" and body["full_refresh"] is True
    run = SyncRun.objects.get(pk=body["id"])
    assert run.trigger == RunTrigger.API and run.requested_by.username.startswith("operator-")
    assert OrmQ.objects.count() == 1  # handed to the task queue; nothing ran in the request
    detail = operator.get(f"/api/v1/pipeline/runs/{run.pk}/").json()
    assert detail["id"] == run.pk and detail["log"][0]["message"] == "queued"


def test_a_run_of_an_unknown_table_is_bad_input(operator):
    response = operator.post("/api/v1/pipeline/runs/", {"table": "nope"}, format="json")
    assert response.status_code == 400
    assert error_of(response)["details"] == [{"field": "table", "message": "no table named 'nope'"}]
    missing = operator.post("/api/v1/pipeline/runs/", {}, format="json")
    assert missing.status_code == 400 and error_of(missing)["details"][0]["field"] == "table"


def test_runs_filter_by_table_status_trigger_and_time(viewer, table):
    other = config_services.table_save_document(document=table_dict("ledger"))
    old = services.run_create(table=table, trigger=RunTrigger.SCHEDULE)
    SyncRun.objects.filter(pk=old.pk).update(
        queued_at=timezone.now() - timedelta(days=3), status=RunStatus.FAILED
    )
    recent = services.run_create(table=table, trigger=RunTrigger.API)
    services.run_create(table=other, trigger=RunTrigger.API)

    def ids(query: str) -> list[int]:
        response = viewer.get(f"/api/v1/pipeline/runs/{query}")
        assert response.status_code == 200, response.json()
        return [run["id"] for run in response.json()["results"]]

    assert ids("?table=payments") == [recent.pk, old.pk]
    assert ids("?table=payments&status=failed") == [old.pk]
    assert ids("?table=payments&trigger=schedule,admin") == [old.pk]
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(f"?table=payments&queued_after={since.replace('+', '%2B')}") == [recent.pk]
    bad = viewer.get("/api/v1/pipeline/runs/?status=done")
    assert bad.status_code == 400 and error_of(bad)["details"][0]["field"] == "status"
    bad_time = viewer.get("/api/v1/pipeline/runs/?queued_after=yesterday")
    assert bad_time.status_code == 400 and error_of(bad_time)["details"][0]["field"] == "queued_after"


def test_cancelling_a_queued_run_cancels_it_and_a_finished_one_is_a_conflict(operator, table):
    run = services.run_create(table=table, trigger=RunTrigger.API)
    response = operator.post(f"/api/v1/pipeline/runs/{run.pk}/cancel/")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    again = operator.post(f"/api/v1/pipeline/runs/{run.pk}/cancel/")
    assert again.status_code == 409 and error_of(again)["code"] == "conflict"
    assert operator.post("/api/v1/pipeline/runs/999999999/cancel/").status_code == 404
    assert operator.get(f"/api/v1/pipeline/runs/{2**70}/").status_code == 404


def test_a_running_run_is_asked_to_stop_at_its_next_batch(operator, table):
    run = services.run_create(table=table, trigger=RunTrigger.API)
    assert run.start(executor="test")
    response = operator.post(f"/api/v1/pipeline/runs/{run.pk}/cancel/")
    assert response.status_code == 202
    assert response.json()["status"] == "running" and response.json()["cancel_requested"] is True


def test_table_status_shows_last_run_last_success_freshness_and_watermark(viewer, table):
    success = services.run_create(table=table, trigger=RunTrigger.SCHEDULE)
    finished = timezone.now() - timedelta(hours=2)
    SyncRun.objects.filter(pk=success.pk).update(
        status=RunStatus.SUCCEEDED,
        finished_at=finished,
        watermark_after={"type": "timestamp_ntz", "value": "2026-01-01T00:00:00.000000"},
    )
    failure = services.run_create(table=table, trigger=RunTrigger.SCHEDULE)
    SyncRun.objects.filter(pk=failure.pk).update(status=RunStatus.FAILED, finished_at=timezone.now())

    status = viewer.get("/api/v1/pipeline/tables/payments/").json()
    assert status["last_run"]["id"] == failure.pk and status["last_run"]["status"] == "failed"
    assert status["last_success"]["id"] == success.pk
    assert status["active_run"] is None
    assert 7000 < status["freshness_seconds"] < 7300
    assert status["stale"] is True  # two hours against a limit of sixty minutes
    assert status["watermark"] == {"type": "timestamp_ntz", "value": "2026-01-01T00:00:00.000000"}
    listed = viewer.get("/api/v1/pipeline/tables/").json()
    assert [t["table"] for t in listed["results"]] == ["payments"]
    assert viewer.get("/api/v1/pipeline/tables/nope/").status_code == 404


def test_the_status_endpoints_cost_a_fixed_number_of_queries_however_many_tables_and_runs(viewer, table):
    def queries(url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert viewer.get(url).status_code == 200
        return len(captured.captured_queries)

    def runs_of(table_config, statuses) -> None:
        for status in statuses:
            run = services.run_create(table=table_config, trigger=RunTrigger.SCHEDULE)
            SyncRun.objects.filter(pk=run.pk).update(status=status, finished_at=timezone.now())

    runs_of(table, [RunStatus.SUCCEEDED])
    viewer.get("/api/v1/pipeline/tables/")  # the key's first use of the day also records when it was used
    few = (queries("/api/v1/pipeline/tables/"), queries("/api/v1/pipeline/tables/payments/"))
    for number in range(5):
        more = config_services.table_save_document(document=table_dict(f"more_{number}", schedule="hourly"))
        runs_of(more, [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.RUNNING])
    many = (queries("/api/v1/pipeline/tables/"), queries("/api/v1/pipeline/tables/payments/"))
    # The key and its roles (2); the list's count and page (2); tables with their latest run ids, those runs,
    # and the schedules' next runs (3).
    assert few == many == (7, 5)
