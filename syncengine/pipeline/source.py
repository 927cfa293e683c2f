"""Snowflake connection settings, the connection itself, and what its failures mean.

The settings arrive typed (the Django side reads them from the environment: `syncengine.connections`). They
never echo a secret: errors name the setting (SNOWFLAKE_PASSWORD), not its value, and the dataclass keeps
secrets out of its repr.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import snowflake.connector
from snowflake.connector import errors as sf_errors

from syncengine.pipeline.errors import (
    ConfigurationError,
    PipelineError,
    SourceSchemaError,
    TerminalError,
    TransientError,
)

DEFAULT_LOGIN_TIMEOUT = 60
DEFAULT_NETWORK_TIMEOUT = 300

# Snowflake error numbers with a known meaning for a run.
_CREDENTIAL_ERRNOS = {390100, 390101, 390102, 390103, 390104, 390144, 394304, 394400}
_ROLE_ERRNOS = {390189}
_NO_WAREHOUSE_ERRNOS = {606, 98049}
_OBJECT_MISSING_ERRNOS = {2003, 2043, 2140, 904}
_TRANSIENT_ERRNOS = {
    604,  # query cancelled (warehouse suspended, statement cancelled by the service)
    630,  # statement timeout
    290401,  # HTTP 401 on a query: the session's token is no longer accepted; a new session is needed
    390111,  # session no longer exists
    390112,  # session expired
    390114,  # session token expired mid-run
    250001,  # could not connect
    250002,  # connection closed
    250003,  # request failed
    250005,  # server error
    251011,  # connection timeout
    251012,  # retryable error code
    252010,  # result chunk download failed
    252013,  # incomplete result chunk
}
_TRANSIENT_HTTP_ERRORS: tuple[type[Exception], ...] = (
    sf_errors.InternalServerError,
    sf_errors.ServiceUnavailableError,
    sf_errors.GatewayTimeoutError,
    sf_errors.BadGatewayError,
    sf_errors.RequestTimeoutError,
    sf_errors.TooManyRequests,
    sf_errors.OtherHTTPRetryableError,
    sf_errors.RequestExceedMaxRetryError,
)


@dataclass(frozen=True)
class SnowflakeSettings:
    """How to reach Snowflake; `connect()` opens a session in UTC. Fields are named after the SNOWFLAKE_*
    settings they come from, which errors name."""

    account: str
    user: str
    password: str | None = field(default=None, repr=False)
    private_key_file: str | None = None
    private_key_passphrase: str | None = field(default=None, repr=False)
    role: str | None = None
    warehouse: str | None = None
    host: str | None = None
    port: int | None = None
    protocol: str | None = None
    session_parameters: dict[str, Any] = field(default_factory=dict)
    login_timeout: int = DEFAULT_LOGIN_TIMEOUT
    network_timeout: int = DEFAULT_NETWORK_TIMEOUT

    def _private_key_der(self) -> bytes:
        """The private key as unencrypted PKCS#8 DER, which is what the connector takes."""
        from cryptography.hazmat.primitives import serialization

        assert self.private_key_file is not None
        try:
            with open(self.private_key_file, "rb") as handle:
                pem = handle.read()
        except OSError as exc:
            raise ConfigurationError(
                f"SNOWFLAKE_PRIVATE_KEY_FILE: cannot read {self.private_key_file}: {exc.strerror}"
            ) from None
        passphrase = self.private_key_passphrase.encode() if self.private_key_passphrase else None
        try:
            key = serialization.load_pem_private_key(pem, password=passphrase)
        except TypeError:
            # Raised both for an encrypted key without a passphrase and a passphrase for a plain key.
            raise ConfigurationError(
                "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE does not suit the key in SNOWFLAKE_PRIVATE_KEY_FILE "
                "(missing for an encrypted key, or set for an unencrypted one)"
            ) from None
        except ValueError:
            raise ConfigurationError(
                "SNOWFLAKE_PRIVATE_KEY_FILE is not a PEM private key, or SNOWFLAKE_PRIVATE_KEY_PASSPHRASE "
                "is wrong"
            ) from None
        return key.private_bytes(
            encoding=serialization.Encoding.DER,
            format=serialization.PrivateFormat.PKCS8,
            encryption_algorithm=serialization.NoEncryption(),
        )

    def connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "account": self.account,
            "user": self.user,
            "login_timeout": self.login_timeout,
            "network_timeout": self.network_timeout,
            # Exact numbers: without this, scaled NUMBER columns arrive in Arrow batches as float64.
            "arrow_number_to_decimal": True,
            # Every timestamp the session produces or interprets is UTC, whatever the account default is.
            "session_parameters": {**self.session_parameters, "TIMEZONE": "UTC"},
            # fdm talks to the configured Snowflake host and nothing else: without this, every login probes
            # cloud metadata addresses (169.254.169.254, metadata.google.internal, ...) to detect a platform.
            "platform_detection_timeout_seconds": 0,
        }
        if self.private_key_file is not None:
            kwargs["private_key"] = self._private_key_der()
            kwargs["authenticator"] = "SNOWFLAKE_JWT"
        else:
            kwargs["password"] = self.password
        for name in ("role", "warehouse", "host", "port", "protocol"):
            value = getattr(self, name)
            if value is not None:
                kwargs[name] = value
        return kwargs

    def connect(self) -> snowflake.connector.SnowflakeConnection:
        """Open a session (key pair or password), in UTC, with failures classified."""
        kwargs = self.connect_kwargs()
        try:
            return snowflake.connector.connect(**kwargs)
        except sf_errors.Error as exc:
            raise classify_connect_error(exc, self) from exc

    @property
    def where(self) -> str:
        if self.host:
            return f"{self.protocol or 'https'}://{self.host}:{self.port or 443}"
        return f"account {self.account}"


def classify_connect_error(exc: Exception, settings: SnowflakeSettings) -> PipelineError:
    """Bad credentials or account -> ConfigurationError naming the setting; the network -> TransientError."""
    errno = getattr(exc, "errno", None)
    sqlstate = getattr(exc, "sqlstate", None) or ""
    if isinstance(exc, sf_errors.ForbiddenError) or errno in (290403, 290404, 540001):
        setting = "SNOWFLAKE_ACCOUNT" if settings.host is None else "SNOWFLAKE_ACCOUNT / SNOWFLAKE_HOST"
        return ConfigurationError(f"Snowflake refused the login at {settings.where}; check {setting}")
    if errno in _CREDENTIAL_ERRNOS or sqlstate.startswith("28"):
        secret = "SNOWFLAKE_PRIVATE_KEY_FILE" if settings.private_key_file else "SNOWFLAKE_PASSWORD"
        return ConfigurationError(f"Snowflake rejected the credentials; check SNOWFLAKE_USER and {secret}")
    if errno in _ROLE_ERRNOS:
        return ConfigurationError("Snowflake rejected the role; check SNOWFLAKE_ROLE")
    if errno == 251001:
        return ConfigurationError("SNOWFLAKE_ACCOUNT is not set")
    if errno in (251005, 251006, 251007, 251008, 251009):
        return ConfigurationError(f"the Snowflake connection settings are incomplete: {_first_line(exc)}")
    return TransientError(f"cannot reach Snowflake at {settings.where}: {_first_line(exc)}")


def classify_snowflake_error(exc: Exception, *, table: str | None = None) -> PipelineError:
    """What a failed Snowflake query means for the run."""
    if isinstance(exc, PipelineError):
        return exc
    errno = getattr(exc, "errno", None)
    message = _first_line(exc)
    if errno in _OBJECT_MISSING_ERRNOS or getattr(exc, "sqlstate", None) == "42S02":
        return SourceSchemaError(
            f"the source table or a column is missing or not authorized: {message}", table=table
        )
    if errno in _NO_WAREHOUSE_ERRNOS:
        return ConfigurationError(f"no usable warehouse; check SNOWFLAKE_WAREHOUSE: {message}", table=table)
    if (
        errno in _TRANSIENT_ERRNOS
        or str(getattr(exc, "sqlstate", None) or "").startswith("08")  # the connection, not the query
        or isinstance(exc, _TRANSIENT_HTTP_ERRORS)
        or isinstance(exc, sf_errors.OperationalError)
        or isinstance(exc, OSError | TimeoutError)
    ):
        return TransientError(f"Snowflake query failed: {message}", table=table)
    return TerminalError(f"Snowflake query failed: {message}", table=table)


def close_in_background(close: Callable[[], object], *, what: str) -> None:
    """Close a Snowflake cursor or connection without waiting for it.

    After a failure the connector's close may wait a whole network timeout more: closing a cursor whose query
    failed sends an abort request, and a connection's close a logout, each retried until
    SNOWFLAKE_NETWORK_TIMEOUT when the source is gone. The run has its error already and holds the table's
    lock meanwhile, so it fails at once and leaves the close to a daemon thread.
    """

    def run() -> None:
        with suppress(Exception):
            close()

    threading.Thread(target=run, name=f"fdm close {what}", daemon=True).start()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
