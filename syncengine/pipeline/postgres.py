"""The target PostgreSQL connection and what its failures mean for a run.

The same classification serves psycopg and the ADBC driver: both report the SQLSTATE, and COPY failures carry
a context line (`COPY t, line 5, column amount`) that names the column.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import psycopg

from syncengine.pipeline.errors import (
    ConfigurationError,
    PipelineError,
    TerminalError,
    TransientError,
    TypeOverflowError,
    ValidationFailed,
)

CONNECT_TIMEOUT_SECONDS = 30
_COPY_COLUMN = re.compile(r"COPY [^,]+, line \d+, column (.+?)(?::|$)", re.MULTILINE)
_OVERFLOW_STATES = {"22003", "22001", "22008", "22015"}
_DISK_FULL = "53100"
_CONFIGURATION_MESSAGES = ("password authentication failed", "does not exist", "no pg_hba.conf entry")


def connect(dsn: str, *, application_name: str) -> psycopg.Connection:
    """An autocommit connection; transactions are opened explicitly where they are needed."""
    options = psycopg.conninfo.conninfo_to_dict(dsn)
    extra: dict[str, str | int] = {"application_name": application_name[:63]}
    if "connect_timeout" not in options:
        extra["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    try:
        return psycopg.connect(psycopg.conninfo.make_conninfo(dsn, **extra), autocommit=True)
    except psycopg.Error as exc:
        raise classify_postgres_error(exc) from exc


def _sqlstate(exc: BaseException) -> str | None:
    return getattr(exc, "sqlstate", None) or None


def _context(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    if diag is not None and diag.context:
        return str(diag.context)
    for key, value in getattr(exc, "details", None) or []:
        if key in (b"PG_DIAG_CONTEXT", "PG_DIAG_CONTEXT"):
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return ""


def _primary_message(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    if diag is not None and diag.message_primary:
        message = str(diag.message_primary)
        if diag.message_detail:
            message += f" ({diag.message_detail})"
        return message
    # ADBC's (key, value) pairs; its stubs say str keys, but the PostgreSQL driver sends bytes.
    details: dict[str | bytes, bytes] = dict(getattr(exc, "details", None) or [])
    primary = details.get(b"PG_DIAG_MESSAGE_PRIMARY")
    if primary:
        message = primary.decode("utf-8", "replace")
        if detail := details.get(b"PG_DIAG_MESSAGE_DETAIL"):
            message += f" ({detail.decode('utf-8', 'replace')})"
        return message
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def copy_column(exc: BaseException) -> str | None:
    """The column a COPY failed on, from PostgreSQL's error context."""
    match = _COPY_COLUMN.search(_context(exc))
    return match.group(1).strip() if match else None


def classify_postgres_error(
    exc: BaseException, *, table: str | None = None, source_names: Mapping[str, str] | None = None
) -> PipelineError:
    """Connection trouble, timeouts and lock waits are transient; bad data and bad settings are terminal.

    `source_names` maps target column names to source names, so a message can name both.
    """
    if isinstance(exc, PipelineError):
        return exc
    sqlstate = _sqlstate(exc)
    message = _primary_message(exc)
    column = copy_column(exc)
    if column and source_names and source_names.get(column, column) != column:
        column = f"{column} (source {source_names[column]})"
    if sqlstate is None:
        # Failures without a SQLSTATE happen before or outside a query: connecting, a dropped connection.
        lowered = message.lower()
        if isinstance(exc, psycopg.OperationalError) and any(
            text in lowered for text in _CONFIGURATION_MESSAGES
        ):
            return ConfigurationError(f"cannot connect to the target database: {message}", table=table)
        return TransientError(f"target database unavailable: {message}", table=table)
    if sqlstate in _OVERFLOW_STATES or sqlstate[:2] in ("22", "23"):
        return _data_error(sqlstate, message, table=table, column=column)
    if sqlstate == _DISK_FULL:
        # Worth retrying: space comes back when an operator frees it or another run drops its staging table.
        return TransientError(f"the target database is out of disk space: {message}", table=table)
    if sqlstate == "55P03":
        return TransientError(
            f"another session held the target table longer than the publish lock timeout allows: {message}",
            table=table,
        )
    state_class = sqlstate[:2]
    if state_class in ("08", "40", "53", "57", "58"):
        return TransientError(f"target database: {message}", table=table)
    if state_class == "28" or sqlstate == "3D000":
        return ConfigurationError(f"cannot connect to the target database: {message}", table=table)
    if sqlstate == "42501":
        return ConfigurationError(f"the target database user lacks a privilege: {message}", table=table)
    return TerminalError(f"target database: {message}", table=table, column=column)


def _data_error(sqlstate: str, message: str, *, table: str | None, column: str | None) -> PipelineError:
    """A value the target refused (classes 22 and 23): terminal, naming the column when COPY said which."""
    if sqlstate in _OVERFLOW_STATES:
        return TypeOverflowError(
            f"value does not fit the target column: {message}", table=table, column=column
        )
    if sqlstate.startswith("22"):
        return ValidationFailed(f"invalid value: {message}", table=table, column=column)
    return ValidationFailed(f"constraint violated: {message}", table=table, column=column)
