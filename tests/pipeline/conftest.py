"""Fixtures for the Django-free pipeline: a fresh source database in the Snowflake emulator per test, reached
by the real connector, and a fresh PostgreSQL database as the target. Nothing here needs Django."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import snowflake.connector

from syncengine.dev.emulator import emulator_settings
from syncengine.pipeline.runner import run_sync
from syncengine.pipeline.source import SnowflakeSettings
from syncengine.pipeline.spec import SourceRef, SyncMode, TableSpec, TargetRef


def pytest_configure(config: pytest.Config) -> None:
    # The emulator warns about its own Arrow conversions on every query; nothing here can act on it.
    config.addinivalue_line("filterwarnings", "ignore:Arrow output on a DB-API result:UserWarning")


class Source:
    """One emulator database for one test, with helpers to shape its tables."""

    def __init__(self, conn: Any, database: str):
        self.conn = conn
        self.database = database

    def sql(self, statement: str, params: tuple | None = None) -> list[tuple]:
        cursor = self.conn.cursor()
        try:
            cursor.execute(statement, params, _force_qmark_paramstyle=params is not None)
            return cursor.fetchall()
        finally:
            cursor.close()

    def table(self, name: str) -> str:
        return f"{self.database}.PUBLIC.{name}"


@pytest.fixture(scope="session")
def source_connection(snowflake_server) -> Iterator[Any]:
    conn = snowflake.connector.connect(**snowflake_server)
    yield conn
    conn.close()


@pytest.fixture
def source(source_connection) -> Source:
    database = f"SRC_{uuid.uuid4().hex[:10].upper()}"
    helper = Source(source_connection, database)
    helper.sql(f"CREATE DATABASE {database}")
    helper.sql(f"CREATE SCHEMA {database}.PUBLIC")
    # The emulator has no DROP DATABASE; its memory goes when the test session ends.
    return helper


@pytest.fixture
def settings(snowflake_server) -> SnowflakeSettings:
    return emulator_settings(snowflake_server, login_timeout=10, network_timeout=30)


@pytest.fixture
def make_spec(source) -> Callable[..., TableSpec]:
    def make(table: str, **overrides: Any) -> TableSpec:
        values: dict[str, Any] = {
            "name": overrides.pop("name", table.lower()),
            "source": SourceRef(source.database, "PUBLIC", table),
            "target": TargetRef(
                overrides.pop("target_schema", "public"), overrides.pop("target_table", table.lower())
            ),
            "batch_size": 3,
        }
        if "watermark_column" in overrides and "mode" not in overrides:
            values["mode"] = SyncMode.INCREMENTAL
        values.update(overrides)
        return TableSpec(**values)

    return make


@pytest.fixture
def sync(settings, scratch_database) -> Callable[..., Any]:
    """run_sync against the emulator and the scratch database."""

    def run(spec: TableSpec, **kwargs: Any):
        return run_sync(spec, source=settings, target_dsn=scratch_database, **kwargs)

    return run


@pytest.fixture
def target(scratch_database) -> Iterator[Callable[..., list[tuple]]]:
    """Run a query on the target database and return its rows."""
    conn = psycopg.connect(scratch_database, autocommit=True)

    def query(statement: str, params: tuple | None = None) -> list[tuple]:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []

    yield query
    conn.close()


def staging_tables(query: Callable[..., list[tuple]]) -> list[str]:
    return [
        name
        for (name,) in query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = '_fdm_staging'"
        )
    ]
