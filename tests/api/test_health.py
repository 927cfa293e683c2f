"""Liveness and readiness, as a load balancer or a kubelet sees them, and with details for viewers."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Task
from rest_framework.test import APIClient

from syncconfig import services as config_services
from syncconfig.models import TableConfig
from tests.api.conftest import table_dict

pytestmark = pytest.mark.django_db


def _worker_finished_a_task(minutes_ago: int = 0) -> None:
    moment = timezone.now() - timedelta(minutes=minutes_ago)
    Task.objects.create(
        id=uuid.uuid4().hex,
        name="reaper",
        func="syncengine.tasks.reap_stale_runs",
        started=moment,
        stopped=moment,
        success=True,
    )


def test_liveness_answers_without_credentials_and_touches_nothing(django_assert_num_queries):
    with django_assert_num_queries(0):
        response = APIClient().get("/health/live")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readiness_is_200_when_every_check_passes_and_shows_details_only_to_viewers(snowflake_env, viewer):
    _worker_finished_a_task()
    anonymous = APIClient().get("/health/ready")
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "ok"}
    detailed = viewer.get("/health/ready").json()
    assert detailed["status"] == "ok"
    assert {name: check["status"] for name, check in detailed["checks"].items()} == {
        "database": "ok",
        "target_database": "ok",
        "broker": "ok",
        "workers": "ok",
    }


def test_readiness_is_503_without_a_live_worker(snowflake_env, viewer):
    response = viewer.get("/health/ready")
    assert response.status_code == 503 and response.json()["checks"]["workers"]["status"] == "failing"
    assert APIClient().get("/health/ready").json() == {"status": "unavailable"}


def test_readiness_stays_200_with_a_stale_table(snowflake_env, viewer):
    """A stale table is the data's problem, not the service's: the admin must stay in rotation."""
    _worker_finished_a_task()
    config_services.table_save_document(document=table_dict("stale_one", freshness_sla="5m"))
    TableConfig.objects.filter(name="stale_one").update(created_at=timezone.now() - timedelta(hours=1))
    response = viewer.get("/health/ready")
    assert response.status_code == 200
    assert "freshness" not in response.json()["checks"]


def test_readiness_stays_200_when_snowflake_is_not_reachable(monkeypatch, viewer):
    _worker_finished_a_task()
    monkeypatch.delenv("SNOWFLAKE_ACCOUNT", raising=False)
    response = viewer.get("/health/ready")
    assert response.status_code == 200
    assert "snowflake" not in response.json()["checks"]
