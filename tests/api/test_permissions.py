"""The permission matrix: every endpoint, called anonymously and with a key of each role, answers with the
status its role rules say: 401 without credentials, 403 below the endpoint's role, its own status from there
up. A second test checks that the matrix lists every operation of the served OpenAPI schema."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth.models import User
from drf_spectacular.generators import SchemaGenerator

from fdm.api.roles import Role
from fdm.apikeys.services import api_key_create, service_account_role_set, service_key_create
from syncconfig.models import TableConfig
from syncengine import services
from syncengine.choices import RunTrigger
from syncengine.reconciliations import reconciliation_create
from tests.api.conftest import error_of, table_dict

RANK = {None: 0, "viewer": 1, "operator": 2, "admin": 3}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {table}, {run}, {key} and {user} are filled in per test
    role: str | None  # the lowest role allowed; None: anyone, without credentials
    status: int  # the answer for an allowed caller
    body: Any = None
    query: str = ""
    tags: tuple[str, ...] = field(default=())

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


def new_table_body() -> dict[str, Any]:
    return table_dict()


ENDPOINTS = [
    Endpoint("get", "/api/v1/tables/", "viewer", 200),
    Endpoint("post", "/api/v1/tables/", "operator", 201, body="new-table"),
    Endpoint("get", "/api/v1/tables/{table}/", "viewer", 200),
    Endpoint("put", "/api/v1/tables/{table}/", "operator", 200, body="same-table"),
    Endpoint("patch", "/api/v1/tables/{table}/", "operator", 200, body={"notes": "patched"}),
    Endpoint("delete", "/api/v1/tables/{table}/", "operator", 204),
    Endpoint("get", "/api/v1/tables/{table}/history/", "viewer", 200),
    # Snowflake is not configured in this test: past the permission check, 503 says so.
    Endpoint("post", "/api/v1/tables/{table}/validate/", "operator", 503),
    Endpoint("get", "/api/v1/tables/yaml-export/", "viewer", 200),
    Endpoint(
        "post", "/api/v1/tables/yaml-import/", "operator", 200, body={"tables": []}, query="?dry_run=true"
    ),
    Endpoint("get", "/api/v1/pipeline/runs/", "viewer", 200),
    Endpoint("post", "/api/v1/pipeline/runs/", "operator", 202, body="run-of-table"),
    Endpoint("get", "/api/v1/pipeline/runs/{run}/", "viewer", 200),
    Endpoint("post", "/api/v1/pipeline/runs/{run}/cancel/", "operator", 202),
    Endpoint("get", "/api/v1/pipeline/runs/{run}/evidence/", "viewer", 200),
    Endpoint("get", "/api/v1/pipeline/tables/", "viewer", 200),
    Endpoint("get", "/api/v1/pipeline/tables/{table}/", "viewer", 200),
    Endpoint("post", "/api/v1/pipeline/tables/{table}/reconcile/", "operator", 202, body={"deep": True}),
    Endpoint("get", "/api/v1/pipeline/reconciliations/", "viewer", 200),
    Endpoint("get", "/api/v1/pipeline/reconciliations/{reconciliation}/", "viewer", 200),
    Endpoint("get", "/api/v1/metadata/type-mapping/", "viewer", 200),
    # Snowflake is not configured in this test: past the permission check, 503 says so.
    Endpoint("get", "/api/v1/metadata/tables/{table}/", "viewer", 503),
    Endpoint("get", "/api/v1/metadata/tables/{table}/row-counts/", "viewer", 503),
    # The table has never been synced: past the permission check, 404 says so.
    Endpoint("get", "/api/v1/data/{table}/", "viewer", 404),
    Endpoint("post", "/api/v1/data/{table}/search/", "viewer", 404, body={"filters": {}}),
    Endpoint("get", "/api/v1/admin/keys/", "admin", 200),
    Endpoint("post", "/api/v1/admin/keys/", "admin", 201, body="new-key"),
    Endpoint("get", "/api/v1/admin/keys/{key}/", "admin", 200),
    Endpoint("get", "/api/v1/admin/keys/{key}/history/", "admin", 200),
    Endpoint("delete", "/api/v1/admin/keys/{key}/", "admin", 200),
    Endpoint("get", "/api/v1/admin/users/", "admin", 200),
    Endpoint("put", "/api/v1/admin/users/{user}/role/", "admin", 200, body={"role": "viewer"}),
    Endpoint("get", "/api/v1/admin/workers/", "admin", 200),
    Endpoint("post", "/api/v1/admin/runs/purge/", "admin", 200, body={"older_than_days": 30}),
    Endpoint("get", "/api/v1/incidents/", "viewer", 200),
    Endpoint("get", "/api/v1/schema/", "viewer", 200),
    Endpoint("get", "/api/v1/docs/", "viewer", 200),
    Endpoint("get", "/health/live", None, 200),
    # No worker has finished a task here, so readiness fails, for anyone who asks.
    Endpoint("get", "/health/ready", None, 503),
]


def expected_status(endpoint: Endpoint, role: str | None) -> int:
    if endpoint.path == "/api/v1/docs/" and role is None:
        return 302  # people are sent to the login page
    if RANK[role] >= RANK[endpoint.role]:
        return endpoint.status
    return 401 if role is None else 403


@pytest.fixture
def world(db, monkeypatch) -> dict[str, Any]:
    """One of each object the paths name: a table, a queued run of it, a service account's API key, a person."""
    for name in ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PASSWORD", "SNOWFLAKE_HOST"):
        monkeypatch.delenv(name, raising=False)
    body = table_dict()
    table = TableConfig(**{"name": body["name"]})
    from syncconfig import services as config_services

    table = config_services.table_save_document(document=body)
    run = services.run_create(table=table, trigger=RunTrigger.API)
    reconciliation = reconciliation_create(table=table, trigger=RunTrigger.API, deep=True)
    someone = User.objects.create(username=f"someone-{uuid.uuid4().hex[:6]}")
    key, _ = service_key_create(username=f"program-{uuid.uuid4().hex[:6]}", role=Role.VIEWER)
    return {
        "table": table,
        "body": body,
        "run": run,
        "key": key,
        "user": someone,
        "reconciliation": reconciliation,
    }


def _body(endpoint: Endpoint, world: dict[str, Any]) -> Any:
    if endpoint.body == "new-table":
        return new_table_body()
    if endpoint.body == "same-table":
        return {**world["body"], "notes": "replaced"}
    if endpoint.body == "run-of-table":
        return {"table": world["table"].name}
    if endpoint.body == "new-key":
        return {"name": f"svc-{uuid.uuid4().hex[:6]}", "role": "viewer"}
    return endpoint.body


@pytest.mark.parametrize("role", [None, "viewer", "operator", "admin"], ids=lambda r: r or "anonymous")
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.id)
def test_each_endpoint_answers_each_role_as_the_role_rules_say(endpoint, role, world, client_for):
    client = client_for(role)
    path = endpoint.path.format(
        table=world["table"].name,
        run=world["run"].pk,
        key=world["key"].pk,
        user=world["user"].username,
        reconciliation=world["reconciliation"].pk,
    )
    response = getattr(client, endpoint.method)(
        path + endpoint.query, data=_body(endpoint, world), format="json" if endpoint.body else None
    )
    expected = expected_status(endpoint, role)
    assert response.status_code == expected, (response.status_code, getattr(response, "content", b"")[:500])
    if expected in (401, 403) and endpoint.path != "/api/v1/docs/":  # the docs page is HTML for browsers
        error = error_of(response)
        assert error["code"] == ("not_authenticated" if expected == 401 else "permission_denied")
    if expected == 401 and endpoint.path != "/api/v1/docs/":
        assert response["WWW-Authenticate"] == "Api-Key"


def test_the_matrix_covers_every_operation_of_the_schema():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = {
        (method, path)
        for path, methods in schema["paths"].items()
        for method in methods
        if method in {"get", "post", "put", "patch", "delete"}
    }
    listed = {(e.method, e.path.replace("{table}", "{name}")) for e in ENDPOINTS}
    normalised = {
        (
            method,
            path.replace("{run_id}", "{run}")
            .replace("{key_id}", "{key}")
            .replace("{username}", "{user}")
            .replace("{reconciliation_id}", "{reconciliation}"),
        )
        for method, path in operations
    }
    # The schema and docs pages are not operations of the schema itself.
    assert normalised == listed - {("get", "/api/v1/schema/"), ("get", "/api/v1/docs/")}


def test_a_user_without_a_role_is_refused_everywhere_but_health(db, client_for):
    nobody = service_key_create(username="nobody", role=Role.VIEWER)[0].user
    service_account_role_set(user=nobody, role=None)
    _, key = api_key_create(user=nobody, name="no role")
    client = client_for(None)
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert client.get("/api/v1/tables/").status_code == 403
    assert client.get("/health/live").status_code == 200


def test_every_api_view_names_its_permission_classes():
    from django.urls import URLPattern, URLResolver, get_resolver

    def views(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from views(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), getattr(pattern.callback, "view_class", None)

    unnamed = [
        path
        for path, view_class in views(get_resolver().url_patterns)
        if path.startswith(("api/", "health/"))
        and view_class is not None
        and not any(
            "permission_classes" in vars(klass) or "get_permissions" in vars(klass)
            for klass in view_class.__mro__
            if klass.__module__.startswith(("fdm", "syncconfig", "syncengine", "drf_spectacular"))
        )
    ]
    assert unnamed == []
