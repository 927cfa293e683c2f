"""Fixtures for the table configuration tests."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

# The seed example from the design notes, verbatim: it must import unchanged.
SEED_YAML = textwrap.dedent(
    """\
    tables:
      - name: "financial_data"
        snowflake: {database: "PROD_DB", schema: "PUBLIC", table: "FINANCIAL_DATA"}
        postgres: {schema: "public", table: "financial_data"}
        sync_mode: "full"          # full | incremental
        schedule: "daily"
        encryption: true
        compression: true
      - name: "market_data"
        snowflake: {database: "PROD_DB", schema: "PUBLIC", table: "MARKET_DATA"}
        postgres: {schema: "public", table: "market_data"}
        sync_mode: "incremental"
        incremental_column: "updated_at"
        schedule: "hourly"
        encryption: true
        compression: false
    """
)


def table(name: str = "transactions", **overrides: Any) -> dict[str, Any]:
    """A valid table dict; keyword arguments replace or add keys (None removes one)."""
    base: dict[str, Any] = {
        "name": name,
        "snowflake": {"database": "PROD_DB", "schema": "FINANCE", "table": name.upper()},
        "postgres": {"schema": "finance", "table": name},
        "sync_mode": "incremental",
        "incremental_column": "UPDATED_AT",
        "schedule": "hourly",
        "primary_key": ["TXN_ID"],
        "encryption": {"columns": ["ACCOUNT_NUMBER", "IBAN"], "searchable": ["ACCOUNT_NUMBER"]},
        "compression": {"columns": ["DESCRIPTION"]},
    }
    for key, value in overrides.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


@pytest.fixture
def seed_yaml() -> str:
    return SEED_YAML


@pytest.fixture
def config_dir(tmp_path: Path, settings) -> Path:
    """An empty configuration directory with environments/, made the FDM_CONFIG_DIR."""
    (tmp_path / "environments").mkdir()
    settings.FDM_CONFIG_DIR = tmp_path
    settings.FDM_ENV = None
    return tmp_path


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    # The admin tests log in a superuser per test; the production hasher would spend seconds on each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
