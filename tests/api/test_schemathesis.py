"""Property-based tests of the whole API against the OpenAPI schema it serves (schemathesis).

Every operation of /api/v1/schema/ is called with generated inputs, as an admin (the widest role), through the
WSGI application on the test database. Checks: no server error (5xx other than the documented 503 of an
unreachable dependency), every status code documented, content types and bodies as documented. Examples per
operation are bounded so that the whole run stays within a minute or so.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fdm.api.roles import Role
from fdm.apikeys.services import service_key_create

MAX_EXAMPLES = 30


def no_undocumented_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis' server-error check, except a 503 that the operation documents (Snowflake unreachable)."""
    if response.status_code == 503 and "503" in case.operation.definition.raw.get("responses", {}):
        return True
    return not_a_server_error(ctx, response, case)


CHECKS = [
    no_undocumented_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def admin_key(db) -> str:
    return service_key_create(username="schemathesis", role=Role.ADMIN)[1]


@pytest.fixture
def wsgi_app(db) -> Iterator[Any]:
    """The project's WSGI application on the test database's open transaction.

    Django closes the database connection at the end of each request; like Django's own test client, keep it
    open, or the test's transaction (and its data) would be gone after the first call.
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(admin_key, wsgi_app, monkeypatch):
    # Snowflake unconfigured: metadata answers its documented 503 at once instead of trying to connect.
    for name in ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PASSWORD", "SNOWFLAKE_HOST"):
        monkeypatch.delenv(name, raising=False)
    config = schemathesis.Config.from_dict({"generation": {"mode": "positive", "max-examples": MAX_EXAMPLES}})
    return schemathesis.openapi.from_wsgi(
        "/api/v1/schema/",
        wsgi_app,
        config=config,
        headers={"Authorization": f"Api-Key {admin_key}"},
    )


SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)


def test_every_operation_keeps_to_the_schema(api_schema, admin_key):
    """Each operation in turn (schemathesis' pytest plugin does not support this pytest's node ids); every
    failing operation is reported, not only the first."""
    headers = {"Authorization": f"Api-Key {admin_key}"}
    failures: dict[str, str] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 20, [operation.label for operation in operations]
    for operation in operations:

        @given(case=operation.as_strategy())
        @SETTINGS
        def call(case: Any) -> None:
            # A revoked key would turn every later call into a (documented) 401: keep the caller's key usable.
            if case.operation.method.upper() == "DELETE" and "{key_id}" in case.operation.path:
                case.path_parameters = {**(case.path_parameters or {}), "key_id": 2**62}
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            call()
        except (Exception, ExceptionGroup) as exc:  # hypothesis raises a group for several failures
            failures[operation.label] = str(exc)[:3000]
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
