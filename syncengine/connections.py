"""Connection settings for a run: Snowflake from the environment, the target PostgreSQL from settings.

Secrets are read here, handed to the pipeline, and never stored.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import psycopg
from django.conf import settings
from django.db import connections

if TYPE_CHECKING:
    from syncengine.pipeline.protection.keyring import Keyring
    from syncengine.pipeline.source import SnowflakeSettings


def snowflake_settings() -> SnowflakeSettings:
    """Snowflake connection settings from SNOWFLAKE_*; raises ConfigurationError naming a bad setting."""
    # Imported here: the source module loads the Snowflake connector, which only a running sync needs.
    from syncengine.pipeline.source import SnowflakeSettings

    return SnowflakeSettings.from_env(os.environ)


def target_dsn() -> str:
    """Where synced tables are written: TARGET_DATABASE_URL, or else Django's own database.

    The fallback is built from the live connection's settings rather than DATABASE_URL so that it follows
    Django when it switches databases (pytest-django's test_* database).
    """
    if settings.TARGET_DATABASE_URL:
        return settings.TARGET_DATABASE_URL
    db = connections["default"].settings_dict
    params: dict[str, str] = {}
    for key, value in (
        ("dbname", db.get("NAME")),
        ("user", db.get("USER")),
        ("password", db.get("PASSWORD")),
        ("host", db.get("HOST")),
        ("port", db.get("PORT")),
    ):
        if value not in (None, ""):
            params[key] = str(value)
    # libpq options from Django's OPTIONS (sslmode, sslrootcert, ...); Django-only keys have no libpq meaning.
    for key, value in (db.get("OPTIONS") or {}).items():
        if key in {"pool", "server_side_binding", "isolation_level", "assume_role", "cursor_factory"}:
            continue
        if isinstance(value, str | int | float):
            params[key] = str(value)
    return psycopg.conninfo.make_conninfo(**params)


def keyring(*, required: bool) -> Keyring | None:
    """The column-encryption keyring from FDM_ENCRYPTION_KEYS (or FDM_ENCRYPTION_KEYS_FILE).

    None when unset and not `required`; a set but malformed keyring is always an error (KeyringError, which
    names the entry that is wrong and never a key).
    """
    from syncengine.pipeline.protection.keyring import keyring_from_env

    return keyring_from_env(os.environ, required=required)
