"""Fixtures for the REST API tests: users of each role with API keys, and clients that send them."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from rest_framework.test import APIClient

from fdm.api import health
from fdm.api.roles import Role
from fdm.apikeys.services import service_key_create

ROLES = ("viewer", "operator", "admin")


@pytest.fixture(autouse=True)
def fresh_api_state(settings) -> None:
    """Throttle counts and cached readiness results from other tests must not leak into this one."""
    cache.clear()
    settings.FDM_READY_CACHE_SECONDS = 0
    health._cached = None


@pytest.fixture
def api_key(db) -> Callable[[str], str]:
    """A new API key for a new service user with the given role."""

    def make(role: str) -> str:
        _, key = service_key_create(username=f"{role}-{uuid.uuid4().hex[:8]}", role=Role.parse(role))
        return key

    return make


@pytest.fixture
def client_for(api_key) -> Callable[[str | None], APIClient]:
    """An API client that authenticates with a key of `role`, or anonymously for None."""

    def make(role: str | None) -> APIClient:
        client = APIClient()
        if role is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key(role)}")
        return client

    return make


@pytest.fixture
def viewer(client_for) -> APIClient:
    return client_for("viewer")


@pytest.fixture
def operator(client_for) -> APIClient:
    return client_for("operator")


@pytest.fixture
def admin(client_for) -> APIClient:
    return client_for("admin")


def table_dict(name: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A valid table dict (the YAML shape); keyword arguments replace keys (None removes one)."""
    name = name or f"t_{uuid.uuid4().hex[:10]}"
    base: dict[str, Any] = {
        "name": name,
        "snowflake": {"database": "FDM_ENGINE", "schema": "PUBLIC", "table": name.upper()},
        "postgres": {"schema": "public", "table": name},
        "sync_mode": "full",
        "schedule": "manual",
        "encryption": False,
        "compression": False,
    }
    for key, value in overrides.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def error_of(response) -> dict[str, Any]:
    """The error object of an error response, checked to have the one error shape."""
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and isinstance(error["message"], str) and error["message"]
    for detail in error["details"]:
        assert set(detail) == {"field", "message"}, detail
    return error


@pytest.fixture
def superuser_client(db) -> APIClient:
    user = User.objects.create_superuser("root", "root@example.com", "x")
    client = APIClient()
    client.force_login(user)
    return client


# The engine's fixtures for the Snowflake emulator and the target database (seed_source needs snowflake).
from tests.engine.conftest import make_table, seed_source, snowflake  # noqa: E402, F401
