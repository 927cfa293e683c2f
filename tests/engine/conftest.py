"""Fixtures for the engine's Django side: table configurations made through the ORM, source tables seeded
in the Snowflake emulator with the real connector, and target tables in the test database."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from psycopg import sql

from syncconfig.models import TableConfig
from syncengine.connections import target_dsn
from syncengine.pipeline.protection.keyring import Keyring

SOURCE_DATABASE = "FDM_ENGINE"
SOURCE_SCHEMA = "PUBLIC"


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_table(db) -> Callable[..., TableConfig]:
    """Create a TableConfig through the ORM (signals fire as on any save). Names are unique per call."""

    def make(**overrides) -> TableConfig:
        name = overrides.pop("name", None) or unique_name("t")
        fields = {
            "name": name,
            "snowflake_database": SOURCE_DATABASE,
            "snowflake_schema": SOURCE_SCHEMA,
            "snowflake_table": name.upper(),
            "postgres_schema": "public",
            "postgres_table": name,
            "sync_mode": "full",
            "schedule": "manual",
            "enabled": True,
        }
        fields.update(overrides)
        return TableConfig.objects.create(**fields)

    return make


@pytest.fixture
def snowflake(snowflake_env) -> Iterator:
    """A cursor on the emulator through the real connector (to create and fill source tables)."""
    import snowflake.connector

    conn = snowflake.connector.connect(**snowflake_env)
    cursor = conn.cursor()
    cursor.execute(f"CREATE DATABASE IF NOT EXISTS {SOURCE_DATABASE}")
    cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {SOURCE_DATABASE}.{SOURCE_SCHEMA}")
    yield cursor
    conn.close()


@pytest.fixture
def seed_source(snowflake) -> Callable[..., str]:
    """Create (if needed) a small transactions table in the emulator and add rows; returns its full name."""

    def seed(name: str, *, rows: int = 25, start: int = 1) -> str:
        table = f"{SOURCE_DATABASE}.{SOURCE_SCHEMA}.{name.upper()}"
        snowflake.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (TXN_ID NUMBER(38,0) PRIMARY KEY, AMOUNT NUMBER(18,2), "
            "CURRENCY TEXT, UPDATED_AT TIMESTAMP_NTZ)"
        )
        base = datetime(2026, 1, 1)
        snowflake.executemany(
            # The table name is built by the test itself; the values are bound.
            f"INSERT INTO {table} (TXN_ID, AMOUNT, CURRENCY, UPDATED_AT) VALUES (%s, %s, %s, %s)",  # noqa: S608
            [
                (i, Decimal(i) + Decimal("0.25"), "EUR", base + timedelta(minutes=i))
                for i in range(start, start + rows)
            ],
        )
        return table

    return seed


@pytest.fixture
def target() -> Callable[..., object]:
    """Query the target database (the test database unless TARGET_DATABASE_URL is set)."""

    def query(sql: str, params: tuple | None = None):
        with psycopg.connect(target_dsn(), autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    return query


@pytest.fixture
def target_rows() -> Callable[[TableConfig], int]:
    """How many rows a table's target holds."""

    def count(table: TableConfig) -> int:
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(table.postgres_schema), sql.Identifier(table.postgres_table)
        )
        with psycopg.connect(target_dsn(), autocommit=True) as conn:
            return conn.execute(query).fetchone()[0]

    return count


@pytest.fixture
def keyring(monkeypatch) -> Keyring:
    """A keyring with one key, k1, in the environment of fdm's processes (this one and those it starts)."""
    ring = Keyring.generate("k1")
    monkeypatch.setenv("FDM_ENCRYPTION_KEYS", ring.format())
    return ring
