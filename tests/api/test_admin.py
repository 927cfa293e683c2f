"""Admin endpoints: API keys, users' roles, worker and queue status, purging old runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from fdm.api.roles import Role, role_of
from fdm.apikeys.models import ApiKey
from syncconfig import services as config_services
from syncengine import services
from syncengine.choices import RunStatus, RunTrigger
from syncengine.models import SyncRun
from tests.api.conftest import error_of, table_dict

pytestmark = pytest.mark.django_db


def test_a_key_created_by_api_is_shown_once_and_works(admin, client_for):
    created = admin.post("/api/v1/admin/keys/", {"name": "nightly-report", "role": "viewer"}, format="json")
    assert created.status_code == 201, created.json()
    key = created.json()["key"]
    assert created.json()["role"] == "viewer" and created.json()["user"] == "nightly-report"
    listed = admin.get("/api/v1/admin/keys/?active=true").json()["results"]
    assert all("key" not in entry for entry in listed)
    assert key not in str(listed)
    assert created.json()["prefix"] in {entry["prefix"] for entry in listed}
    client = client_for(None)
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert client.get("/api/v1/pipeline/runs/").status_code == 200


def test_a_key_request_with_a_bad_role_names_the_field(admin):
    response = admin.post("/api/v1/admin/keys/", {"name": "x", "role": "root"}, format="json")
    assert response.status_code == 400 and error_of(response)["details"][0]["field"] == "role"


def test_an_admin_sets_and_removes_a_users_role(admin):
    User.objects.create(username="analyst")
    response = admin.put("/api/v1/admin/users/analyst/role/", {"role": "operator"}, format="json")
    assert response.status_code == 200 and response.json()["role"] == "operator"
    assert role_of(User.objects.get(username="analyst")) == Role.OPERATOR
    removed = admin.put("/api/v1/admin/users/analyst/role/", {"role": None}, format="json")
    assert removed.json()["role"] is None
    assert admin.put("/api/v1/admin/users/nobody/role/", {"role": "viewer"}, format="json").status_code == 404
    users = [u["username"] for u in admin.get("/api/v1/admin/users/").json()["results"]]
    assert "analyst" in users


def test_worker_status_reports_queued_runs(admin):
    table = config_services.table_save_document(document=table_dict("queue_me"))
    services.run_create(table=table, trigger=RunTrigger.API)
    status = admin.get("/api/v1/admin/workers/").json()
    assert status["runs_queued"] == 1 and status["runs_running"] == 0
    assert status["workers_alive"] is False and status["broker"] == "orm"


def test_purge_deletes_only_old_finished_runs(admin):
    table = config_services.table_save_document(document=table_dict("history"))
    old_done = services.run_create(table=table, trigger=RunTrigger.API)
    old_queued = services.run_create(table=table, trigger=RunTrigger.API)
    recent_done = services.run_create(table=table, trigger=RunTrigger.API)
    long_ago = timezone.now() - timedelta(days=40)
    SyncRun.objects.filter(pk=old_done.pk).update(status=RunStatus.SUCCEEDED, queued_at=long_ago)
    SyncRun.objects.filter(pk=old_queued.pk).update(queued_at=long_ago)
    SyncRun.objects.filter(pk=recent_done.pk).update(status=RunStatus.FAILED)

    preview = admin.post("/api/v1/admin/runs/purge/", {"older_than_days": 30, "dry_run": True}, format="json")
    assert preview.json()["runs"] == 1 and SyncRun.objects.count() == 3
    purged = admin.post("/api/v1/admin/runs/purge/", {"older_than_days": 30}, format="json")
    assert purged.json()["runs"] == 1
    assert set(SyncRun.objects.values_list("pk", flat=True)) == {old_queued.pk, recent_done.pk}
    bad = admin.post("/api/v1/admin/runs/purge/", {"older_than_days": 0}, format="json")
    assert bad.status_code == 400 and error_of(bad)["details"][0]["field"] == "older_than_days"


def test_revoking_an_unknown_key_is_404(admin):
    assert admin.delete("/api/v1/admin/keys/987654321/").status_code == 404
    assert ApiKey.objects.filter(revoked_at__isnull=False).count() == 0
