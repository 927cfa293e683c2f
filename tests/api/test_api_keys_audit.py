"""API keys go to service accounts only, and every key and role change is on record with who made it."""

from __future__ import annotations

import importlib
import io
import os
import pwd

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Group, User
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone

from fdm.api.roles import Role, role_of, role_set
from fdm.apikeys.management.commands.create_api_key import Command as CreateApiKey
from fdm.apikeys.models import ApiKey, ServiceAccount
from fdm.apikeys.services import (
    NotAServiceAccount,
    api_key_create,
    key_digest,
    service_key_create,
)
from tests.api.conftest import error_of

pytestmark = pytest.mark.django_db


def _groups(user: User) -> set[str]:
    return set(User.objects.get(pk=user.pk).groups.values_list("name", flat=True))


def _admin_user(client) -> str:
    """The username behind the `admin` fixture's key."""
    return ApiKey.objects.get(prefix=client._credentials["HTTP_AUTHORIZATION"].split()[1][:12]).user.username


def test_an_admin_cannot_mint_a_key_for_a_superuser_and_its_groups_stay_as_they_were(admin):
    root = User.objects.create_superuser("root", "root@example.com", "x")
    root.groups.add(Group.objects.create(name="finance"))
    response = admin.post("/api/v1/admin/keys/", {"name": "root", "role": "viewer"}, format="json")
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "not_a_service_account"
    assert "'root'" in error["message"] and "superuser" in error["message"]
    assert error["details"] == [{"field": "name", "message": "'root' is a superuser"}]
    assert _groups(root) == {"finance"} and not ApiKey.objects.filter(user=root).exists()


def test_an_admin_cannot_mint_a_key_for_a_person_nor_change_their_role_that_way(admin):
    alice = User.objects.create_user("alice", "alice@example.com", "a password")
    role_set(user=alice, role=Role.VIEWER)
    response = admin.post("/api/v1/admin/keys/", {"name": "alice", "role": "admin"}, format="json")
    assert response.status_code == 409 and "person's account" in error_of(response)["message"]
    assert _groups(alice) == {"viewer"} and not ApiKey.objects.filter(user=alice).exists()


@pytest.mark.parametrize(
    "make_user, why",
    [
        (lambda: User.objects.create(username="ops", is_staff=True, password="!"), "is a staff user"),
        (lambda: User.objects.create(username="sso-person", password="!"), "is not a service account"),
    ],
    ids=["staff", "unmarked"],
)
def test_the_service_layer_refuses_any_user_that_is_not_a_service_account(make_user, why):
    user = make_user()
    with pytest.raises(NotAServiceAccount, match=why):
        api_key_create(user=user, name="sneaky")
    with pytest.raises(NotAServiceAccount, match=why):
        service_key_create(username=user.username, role=Role.ADMIN)
    assert role_of(User.objects.get(pk=user.pk)) is None and not ApiKey.objects.exists()


def test_a_service_account_that_was_made_staff_gets_no_more_keys(admin):
    record, _ = service_key_create(username="etl", role=Role.VIEWER)
    User.objects.filter(pk=record.user_id).update(is_staff=True)
    response = admin.post("/api/v1/admin/keys/", {"name": "etl", "role": "admin"}, format="json")
    assert response.status_code == 409 and "staff" in error_of(response)["message"]
    assert _groups(record.user) == {"viewer"}
    refused = admin.put("/api/v1/admin/users/etl/role/", {"role": "admin"}, format="json")
    assert refused.status_code == 409 and _groups(record.user) == {"viewer"}


def test_keys_for_service_accounts_still_work_and_record_who_created_them(admin, client_for):
    created = admin.post("/api/v1/admin/keys/", {"name": "nightly", "role": "viewer"}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["created_by"] == _admin_user(admin) and body["created_by_name"] == _admin_user(admin)
    again = admin.post("/api/v1/admin/keys/", {"name": "nightly", "role": "operator"}, format="json")
    assert again.status_code == 201 and again.json()["role"] == "operator"
    client = client_for(None)
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {again.json()['key']}")
    assert client.get("/api/v1/pipeline/runs/").status_code == 200
    listed = admin.get(f"/api/v1/admin/keys/{body['id']}/").json()
    assert listed["created_by"] == _admin_user(admin)
    User.objects.create_user("alice", password="a password")
    users = {u["username"]: u for u in admin.get("/api/v1/admin/users/?page_size=500").json()["results"]}
    assert users["nightly"]["service_account"] is True and users["alice"]["service_account"] is False


def test_creation_revocation_and_role_changes_leave_an_audit_trail_with_the_actor(admin, viewer):
    actor = _admin_user(admin)
    created = admin.post("/api/v1/admin/keys/", {"name": "reporting", "role": "viewer"}, format="json").json()
    admin.put("/api/v1/admin/users/reporting/role/", {"role": "operator"}, format="json")
    assert admin.delete(f"/api/v1/admin/keys/{created['id']}/").status_code == 200
    assert admin.delete(f"/api/v1/admin/keys/{created['id']}/").status_code == 200  # again: nothing recorded

    trail = admin.get(f"/api/v1/admin/keys/{created['id']}/history/")
    assert trail.status_code == 200
    entries = trail.json()["results"]
    assert [(e["subject"], e["action"]) for e in entries] == [
        ("key", "changed"),
        ("account", "changed"),
        ("key", "created"),
        ("account", "created"),
    ]
    assert all(e["user"] == actor and e["actor"] == actor and e["channel"] == "api" for e in entries)
    revoked, role_change, key_created, _ = entries
    assert set(revoked["changes"]) == {"revoked_at"} and revoked["changes"]["revoked_at"][0] is None
    assert role_change["changes"] == {"role": ["viewer", "operator"]}
    assert key_created["changes"]["prefix"] == [None, created["prefix"]]
    assert "digest" not in str(entries) and key_digest(created["key"]) not in str(entries)
    assert viewer.get(f"/api/v1/admin/keys/{created['id']}/history/").status_code == 403
    assert admin.get("/api/v1/admin/keys/987654321/history/").status_code == 404


def test_a_persons_role_change_through_the_api_is_on_record_with_the_admin_who_made_it(admin):
    alice = User.objects.create_user("alice", "alice@example.com", "a password")
    assert admin.put("/api/v1/admin/users/alice/role/", {"role": "admin"}, format="json").status_code == 200
    assert admin.put("/api/v1/admin/users/alice/role/", {"role": "admin"}, format="json").status_code == 200
    assert admin.put("/api/v1/admin/users/alice/role/", {"role": None}, format="json").status_code == 200
    entries = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(User), object_id=str(alice.pk)
    ).order_by("pk")
    assert [(e.user.username, e.action_flag, e.get_change_message()) for e in entries] == [
        (_admin_user(admin), CHANGE, "Changed role from none to admin (via api)."),
        (_admin_user(admin), CHANGE, "Changed role from admin to none (via api)."),
    ]  # setting the role a user already has changes nothing and records nothing


def test_the_command_records_the_os_user_and_refuses_a_superuser_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr("fdm.apikeys.services.os_account", lambda: "deploy")
    out = io.StringIO()
    call_command("create_api_key", "loader", "--role", "operator", stdout=out)
    key = out.getvalue().strip().splitlines()[-1]
    record = ApiKey.objects.get(prefix=key[:12])
    assert record.created_by is None and record.created_by_name == "deploy"
    (entry,) = record.history.all()
    assert (entry.history_user, entry.history_actor, entry.history_change_reason) == (
        None,
        "deploy",
        "command",
    )
    account = ServiceAccount.objects.get(user__username="loader")
    assert account.created_by_name == "deploy" and account.history.get().history_actor == "deploy"

    root = User.objects.create_superuser("root", "root@example.com", "x")
    with pytest.raises(CommandError, match="'root' is a superuser"):
        call_command("create_api_key", "root", "--role", "viewer", stdout=io.StringIO())
    # run_from_argv closes the connections when done; this test still needs its own.
    monkeypatch.setattr("django.core.management.base.connections.close_all", lambda: None)
    with pytest.raises(SystemExit) as exit_info:
        CreateApiKey().run_from_argv(["manage.py", "create_api_key", "root", "--role", "viewer"])
    assert exit_info.value.code != 0
    stderr = capsys.readouterr().err.strip()
    assert len(stderr.splitlines()) == 1 and "'root' is a superuser" in stderr
    assert _groups(root) == set() and not ApiKey.objects.filter(user=root).exists()


def test_the_command_records_the_os_account_of_its_user_id_not_the_name_in_the_environment(monkeypatch):
    for variable in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(variable, "mallory")
    out = io.StringIO()
    call_command("create_api_key", "loader", "--role", "viewer", stdout=out)
    record = ApiKey.objects.get(prefix=out.getvalue().strip().splitlines()[-1][:12])
    assert record.created_by_name == pwd.getpwuid(os.getuid()).pw_name != "mallory"


def test_the_admin_revokes_with_its_account_on_record_and_shows_history_read_only(superuser_client):
    record, _ = service_key_create(username="exporter", role=Role.VIEWER)
    response = superuser_client.post(
        "/admin/apikeys/apikey/", {"action": "revoke_keys", "_selected_action": [record.pk]}
    )
    assert response.status_code == 302
    latest = record.history.order_by("-history_id").first()
    assert latest is not None and latest.revoked_at is not None
    assert (latest.history_user.username, latest.history_actor, latest.history_change_reason) == (
        "root",
        "root",
        "admin",
    )
    page = superuser_client.get(f"/admin/apikeys/apikey/{record.pk}/history/")
    assert page.status_code == 200 and b"root" in page.content
    version = f"/admin/apikeys/apikey/{record.pk}/history/{latest.history_id}/"
    assert superuser_client.post(version, {}).status_code == 403
    account = ServiceAccount.objects.get(user=record.user)
    assert superuser_client.get(f"/admin/apikeys/serviceaccount/{account.pk}/history/").status_code == 200
    assert superuser_client.get("/admin/apikeys/serviceaccount/").status_code == 200


def test_the_migration_marks_service_users_of_earlier_versions_and_no_one_else(db):
    recognise = importlib.import_module("fdm.apikeys.migrations.0005_recognise_service_accounts").recognise

    def old_style(username: str, **fields) -> User:
        user = User.objects.create(username=username, password="!unusable", **fields)
        role_set(user=user, role=Role.OPERATOR)
        return user

    legacy = old_style("legacy-loader")
    ApiKey.objects.create(name="legacy-loader", user=legacy, prefix="fdm_legacy", digest="0" * 64)
    roleless = User.objects.create(username="legacy-roleless", password="!x")
    ApiKey.objects.create(name="roleless", user=roleless, prefix="fdm_nor", digest="1" * 64)
    person_sso = old_style("sso-person", last_login=timezone.now())
    superuser = old_style("old-root", is_superuser=True)
    staff = old_style("old-staff", is_staff=True)
    with_password = User.objects.create_user("with-password", password="secret")
    role_set(user=with_password, role=Role.VIEWER)
    in_other_group = old_style("finance-bot")
    in_other_group.groups.add(Group.objects.create(name="finance"))
    no_role_no_key = User.objects.create(username="idle", password="!x")

    # The models as that migration sees them: no history signals, as in a real migrate.
    recognise(
        MigrationLoader(connection).project_state(("apikeys", "0005_recognise_service_accounts")).apps, None
    )

    marked = set(ServiceAccount.objects.values_list("user__username", flat=True))
    assert marked == {"legacy-loader", "legacy-roleless"}
    account = ServiceAccount.objects.get(user=legacy)
    assert account.role == "operator" and account.history.get().history_change_reason == "migration"
    _, key = service_key_create(username="legacy-loader", role=Role.VIEWER)  # renewing works
    assert key and role_of(User.objects.get(pk=legacy.pk)) == Role.VIEWER
    for user in (person_sso, superuser, staff, with_password, in_other_group, no_role_no_key):
        with pytest.raises(NotAServiceAccount):
            api_key_create(user=user, name="x")
