"""API keys, roles, the error body and throttling."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from fdm.api.roles import Role, has_role, role_of
from fdm.apikeys.models import ApiKey
from tests.api.conftest import error_of

pytestmark = pytest.mark.django_db


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def test_create_api_key_prints_the_key_last_and_stores_only_its_hash():
    out = io.StringIO()
    call_command("create_api_key", "etl-loader", "--role", "operator", stdout=out)
    key = out.getvalue().strip().splitlines()[-1]
    assert key.startswith("fdm_") and len(key) > 40
    record = ApiKey.objects.get(user__username="etl-loader")
    assert record.digest == hashlib.sha256(key.encode()).hexdigest()
    assert key not in {record.digest, record.prefix} and key.startswith(record.prefix)
    user = User.objects.get(username="etl-loader")
    assert role_of(user) == Role.OPERATOR and not user.has_usable_password()
    assert _client(key).get("/api/v1/tables/").status_code == 200


def test_create_api_key_reuses_the_user_and_changes_its_role():
    call_command("create_api_key", "reporting", "--role", "admin", stdout=io.StringIO())
    out = io.StringIO()
    call_command("create_api_key", "reporting", "--role", "viewer", stdout=out)
    assert User.objects.filter(username="reporting").count() == 1
    assert ApiKey.objects.filter(user__username="reporting").count() == 2
    assert role_of(User.objects.get(username="reporting")) == Role.VIEWER
    key = out.getvalue().strip().splitlines()[-1]
    assert _client(key).get("/api/v1/admin/keys/").status_code == 403


def test_a_revoked_or_expired_key_stops_working_and_a_used_key_records_when(admin, api_key):
    key = api_key("viewer")
    record = ApiKey.objects.get(prefix=key[:12])
    assert record.last_used_at is None
    assert _client(key).get("/api/v1/tables/").status_code == 200
    record.refresh_from_db()
    assert record.last_used_at is not None
    revoked = admin.delete(f"/api/v1/admin/keys/{record.pk}/")
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    refused = _client(key).get("/api/v1/tables/")
    assert refused.status_code == 401 and error_of(refused)["code"] == "authentication_failed"

    other = api_key("viewer")
    ApiKey.objects.filter(prefix=other[:12]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert _client(other).get("/api/v1/tables/").status_code == 401


def test_unknown_and_malformed_keys_are_401_with_the_error_body(db):
    for header in ("Api-Key fdm_not-a-real-key", "Api-Key", "Api-Key a b", "api-key whatever"):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=header)
        response = client.get("/api/v1/tables/")
        assert response.status_code == 401, header
        assert error_of(response)["code"] == "authentication_failed"


def test_session_login_works_for_the_browsable_api(superuser_client):
    for path in (
        "/api/v1/tables/",
        "/api/v1/tables/yaml-import/",
        "/api/v1/pipeline/runs/",
        "/api/v1/pipeline/tables/",
        "/api/v1/metadata/type-mapping/",
        "/api/v1/admin/keys/",
        "/api/v1/admin/workers/",
        "/api/v1/docs/",
    ):
        response = superuser_client.get(path, HTTP_ACCEPT="text/html")
        assert response.status_code in (200, 405), (path, response.status_code)
        assert b"<html" in response.content.lower(), path


def test_roles_order_admin_over_operator_over_viewer_and_superusers_are_admins(db):
    root = User.objects.create_superuser("boss", "boss@example.com", "x")
    assert role_of(root) == Role.ADMIN and has_role(root, Role.VIEWER)
    plain = User.objects.create(username="plain")
    assert role_of(plain) is None and not has_role(plain, Role.VIEWER)


def test_every_error_has_one_body_with_the_right_status(viewer, operator):
    not_found = viewer.get("/api/v1/tables/missing/")
    assert not_found.status_code == 404 and error_of(not_found)["code"] == "not_found"
    no_route = viewer.get("/api/v1/no-such-thing/")
    assert no_route.status_code == 404 and error_of(no_route)["code"] == "not_found"
    method = viewer.put("/api/v1/pipeline/runs/", {}, format="json")
    assert method.status_code in (403, 405)
    wrong_method = operator.put("/api/v1/pipeline/runs/", {}, format="json")
    assert wrong_method.status_code == 405 and error_of(wrong_method)["code"] == "method_not_allowed"
    bad_json = operator.post("/api/v1/tables/", "{not json", content_type="application/json")
    assert bad_json.status_code == 400 and error_of(bad_json)["code"] == "parse_error"
    media = operator.post("/api/v1/tables/", "a=1", content_type="text/plain")
    assert media.status_code == 415 and error_of(media)["code"] == "unsupported_media_type"
    nul = viewer.get("/api/v1/tables/?search=a%00b")
    assert nul.status_code == 400 and error_of(nul)["details"] == [
        {"field": "search", "message": "must not contain a NUL character"}
    ]


def test_keys_are_throttled_with_429_and_retry_after(settings, api_key):
    settings.FDM_API_KEY_RATE = "3/min"
    client = _client(api_key("viewer"))
    statuses = [client.get("/api/v1/metadata/type-mapping/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    throttled = client.get("/api/v1/metadata/type-mapping/")
    assert error_of(throttled)["code"] == "throttled" and int(throttled["Retry-After"]) > 0
    assert _client(api_key("viewer")).get("/api/v1/metadata/type-mapping/").status_code == 200  # per key


def test_the_role_groups_exist_after_migrating():
    from django.contrib.auth.models import Group

    assert set(
        Group.objects.filter(name__in=["viewer", "operator", "admin"]).values_list("name", flat=True)
    ) == {
        "viewer",
        "operator",
        "admin",
    }


def test_a_key_never_appears_in_the_logs(api_key, caplog):
    key = api_key("viewer")
    with caplog.at_level("DEBUG"):
        _client(key).get("/api/v1/tables/")
        _client(key + "x").get("/api/v1/tables/")
        _client(key).get("/api/v1/admin/keys/")
    assert key not in caplog.text


def test_create_api_key_refuses_an_unknown_role():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("create_api_key", "x", "--role", "root", stdout=io.StringIO(), stderr=io.StringIO())


def test_the_docs_page_sends_people_to_the_login_page(db):
    response = APIClient().get("/api/v1/docs/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/?next=/api/v1/docs/")


def test_a_django_permission_can_stand_in_for_a_role(db):
    from django.contrib.auth.models import Permission
    from rest_framework.test import APIRequestFactory

    from fdm.api.permissions import role_or_permission

    permission_class = role_or_permission(Role.ADMIN, "syncengine.start_sync")
    user = User.objects.create(username="runner")
    request = APIRequestFactory().get("/")
    request.user = user
    assert not permission_class().has_permission(request, None)
    user.user_permissions.add(Permission.objects.get(codename="start_sync"))
    request.user = User.objects.get(pk=user.pk)  # a fresh object: Django caches permissions per instance
    assert permission_class().has_permission(request, None)


def test_api_keys_are_listed_in_the_admin_without_their_secret(superuser_client, api_key):
    key = api_key("viewer")
    page = superuser_client.get("/admin/apikeys/apikey/")
    assert page.status_code == 200 and key[:12].encode() in page.content and key.encode() not in page.content
    assert superuser_client.get("/admin/apikeys/apikey/add/").status_code == 403
