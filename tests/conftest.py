"""Shared fixtures: the Snowflake emulator (fakesnow in server mode, reached by the real connector, started by
syncengine.dev.emulator as the demo and the benchmark start it) and throwaway PostgreSQL databases on the real
server named by DATABASE_URL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from django.conf import settings as django_settings
from django.test import Client

from syncengine.dev.emulator import emulator, emulator_environment

pytest_plugins = [
    "tests.workers",  # the qcluster and test_database_url fixtures
    "tests.notifications.receivers",  # http_receiver and smtp_server
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `load` take minutes each (200 tables due at once through two workers): they are left out
    unless the marker expression names them (`pytest -m load`, `make load`). Tests marked `faults_full`, the
    slower half of the fault matrix, are left out unless it names faults (`pytest -m faults`, `make faults`)."""
    markexpr = config.option.markexpr or ""
    for marker, named in (("load", "load" in markexpr), ("faults_full", "faults" in markexpr)):
        if named:
            continue
        left_out = [item for item in items if item.get_closest_marker(marker) is not None]
        if left_out:
            config.hook.pytest_deselected(items=left_out)
            items[:] = [item for item in items if item.get_closest_marker(marker) is None]


# fdm sends nothing anywhere but 127.0.0.1 here: the connector's login-time platform probes (cloud metadata
# addresses) stay off for every connection the tests open, worker processes included (they inherit this).
# fdm's own logins turn them off by themselves (tests/pipeline/test_network.py proves it without this).
os.environ["SNOWFLAKE_DISABLE_PLATFORM_DETECTION"] = "true"

# Processes the tests start (workers, commands) sign and verify with this process's secret key: django-q2 signs
# the tasks it queues with it. Without SECRET_KEY the settings make up a key per process (they keep none).
os.environ.setdefault("SECRET_KEY", django_settings.SECRET_KEY)


@pytest.fixture(autouse=True)
def force_login_counts_as_two_factor(monkeypatch) -> None:
    """`client.force_login(user)` stands for a completed login, second factor included, as it skips the
    password too; the login form's own tests (tests/api/test_login_security.py) go through the form."""
    original = Client.force_login

    def force_login(self, user, backend=None):
        from django_otp import DEVICE_ID_SESSION_KEY

        from tests.two_factor import device_for

        original(self, user, backend)
        session = self.session
        session[DEVICE_ID_SESSION_KEY] = device_for(user).persistent_id
        session.save()

    monkeypatch.setattr(Client, "force_login", force_login)


@pytest.fixture(scope="session")
def snowflake_server() -> Iterator[dict]:
    """Connection keyword arguments for a running fakesnow server (shared in-memory databases)."""
    with emulator() as kwargs:
        yield kwargs


@pytest.fixture
def snowflake_env(snowflake_server, monkeypatch) -> dict:
    """Point fdm's SNOWFLAKE_* environment at the emulator."""
    for name, value in emulator_environment(snowflake_server).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SNOWFLAKE_PRIVATE_KEY_FILE", raising=False)
    return snowflake_server


def _server_url() -> str:
    return os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    return _server_url()


@pytest.fixture
def scratch_database(pg_server_url) -> Iterator[str]:
    """A new, empty PostgreSQL database on the real server; dropped afterwards. Yields its conninfo."""
    name = f"fdm_scratch_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(pg_server_url)
    info["dbname"] = name
    dsn = psycopg.conninfo.make_conninfo(**info)
    try:
        yield dsn
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
