"""Connection settings for a run: Snowflake and the keyring from the environment, the target PostgreSQL from
Django's settings.

The pipeline core takes typed settings and never reads the environment: this module reads it (through
`fdm.env`, whose rule lets any setting come from a `<NAME>_FILE`) and builds them. Secrets are read here, handed
to the pipeline, and never stored; errors name the setting, never its value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import psycopg
from django.conf import settings
from django.db import connections

from fdm import env
from syncengine.pipeline.errors import ConfigurationError

if TYPE_CHECKING:
    from syncengine.pipeline.protection.keyring import Keyring
    from syncengine.pipeline.source import SnowflakeSettings

Environ = Mapping[str, str] | None  # None: the process's environment


def snowflake_settings(environ: Environ = None) -> SnowflakeSettings:
    """Snowflake connection settings from SNOWFLAKE_*; raises ConfigurationError naming a bad setting.

    Optional extensions: SNOWFLAKE_SESSION_PARAMETERS (a JSON object added to the session's parameters),
    SNOWFLAKE_LOGIN_TIMEOUT and SNOWFLAKE_NETWORK_TIMEOUT (seconds).
    """
    try:
        return _snowflake_settings(environ)
    except env.ConfigurationError as exc:
        raise ConfigurationError(str(exc)) from None


def _snowflake_settings(environ: Environ) -> SnowflakeSettings:
    # Imported here: the source module loads the Snowflake connector, which only a running sync needs.
    from syncengine.pipeline.source import DEFAULT_LOGIN_TIMEOUT, DEFAULT_NETWORK_TIMEOUT, SnowflakeSettings

    def read(name: str) -> str | None:
        return env.env_str(name, environ=environ)

    account = read("SNOWFLAKE_ACCOUNT")
    if account is None:
        raise ConfigurationError("SNOWFLAKE_ACCOUNT is not set")
    user = read("SNOWFLAKE_USER")
    if user is None:
        raise ConfigurationError("SNOWFLAKE_USER is not set")
    password = read("SNOWFLAKE_PASSWORD")
    private_key_file = read("SNOWFLAKE_PRIVATE_KEY_FILE")
    if password is None and private_key_file is None:
        raise ConfigurationError("set SNOWFLAKE_PRIVATE_KEY_FILE (key pair) or SNOWFLAKE_PASSWORD")
    if password is not None and private_key_file is not None:
        raise ConfigurationError(
            "both SNOWFLAKE_PASSWORD and SNOWFLAKE_PRIVATE_KEY_FILE are set; keep only one"
        )
    protocol = read("SNOWFLAKE_PROTOCOL")
    if protocol is not None and protocol.lower() not in ("http", "https"):
        raise ConfigurationError(f"SNOWFLAKE_PROTOCOL: expected http or https, got {protocol!r}")
    return SnowflakeSettings(
        account=account,
        user=user,
        password=password,
        private_key_file=private_key_file,
        private_key_passphrase=read("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"),
        role=read("SNOWFLAKE_ROLE"),
        warehouse=read("SNOWFLAKE_WAREHOUSE"),
        host=read("SNOWFLAKE_HOST"),
        port=_positive_int("SNOWFLAKE_PORT", environ),
        protocol=protocol.lower() if protocol else None,
        session_parameters=_session_parameters(read("SNOWFLAKE_SESSION_PARAMETERS")),
        login_timeout=_positive_int("SNOWFLAKE_LOGIN_TIMEOUT", environ)
        or _pipeline_setting("snowflake_login_timeout_seconds", DEFAULT_LOGIN_TIMEOUT),
        network_timeout=_positive_int("SNOWFLAKE_NETWORK_TIMEOUT", environ)
        or _pipeline_setting("snowflake_network_timeout_seconds", DEFAULT_NETWORK_TIMEOUT),
    )


def _pipeline_setting(name: str, default: int) -> int:
    """config/pipeline.yaml's value (fdm.pipeline_settings), when Django's settings are loaded."""
    return settings.FDM_PIPELINE[name] if settings.configured else default


def _positive_int(name: str, environ: Environ) -> int | None:
    value = env.env_str(name, environ=environ)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise ConfigurationError(f"{name}: expected a whole number, got {value!r}") from None
    if number <= 0:
        raise ConfigurationError(f"{name}: expected a positive number, got {number}")
    return number


def _session_parameters(raw: str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise ConfigurationError("SNOWFLAKE_SESSION_PARAMETERS: expected a JSON object")
    return parsed


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


def keyring(*, required: bool, environ: Environ = None) -> Keyring | None:
    """The column-encryption keyring from FDM_ENCRYPTION_KEYS (or FDM_ENCRYPTION_KEYS_FILE).

    None when unset and not `required`; a set but malformed keyring is always an error (KeyringError, which
    names the entry that is wrong and never a key).
    """
    from syncengine.pipeline.protection.keyring import ENV_NAME, Keyring, KeyringError

    try:
        value = env.env_value(ENV_NAME, environ=environ)
    except env.ConfigurationError as exc:
        raise KeyringError(str(exc)) from None
    if value is None:
        if required:
            raise KeyringError(
                f"{ENV_NAME} is not set, but a table is configured with encryption; set it (or "
                f"{ENV_NAME}_FILE) to a keyring from `manage.py generate_keyring`"
            )
        return None
    return Keyring.parse(value.text, source=value.source)
