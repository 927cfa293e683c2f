"""Defensive removal of secrets from text that ends up in run records.

The pipeline never puts a secret into a message, but an exception raised deep inside a driver may quote a
connection string or a key. Everything written to a run's error, traceback or log passes through `redact`,
and so does every line the processes log (`RedactingFilter`).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fdm.log import extra_fields

REDACTED = "[redacted]"

# PEM blocks of any private key (RSA, EC, encrypted PKCS#8, OpenSSH ...), also when truncated.
_PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.DOTALL
)
# key=value and key: value pairs whose key names a secret: conninfo strings, URLs' query strings, dict reprs.
_SECRET_PAIR = re.compile(
    r"""(?P<key>["']?\b[\w-]*(?:password|passwd|pwd|passphrase|secret|token|api[_-]?key|private[_-]?key)["']?)"""
    r"""(?P<sep>\s*[:=]\s*)"""
    r"""(?P<value>"[^"]*"|'[^']*'|[^\s,;&)}\]]+)""",
    re.IGNORECASE,
)
# user:password@host in URLs (postgresql://, redis://, snowflake://).
_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]+)@", re.IGNORECASE
)


def redact(text: str) -> str:
    """`text` with anything that looks like a password, token or private key replaced."""
    if not text:
        return text
    text = _PRIVATE_KEY_BLOCK.sub(REDACTED, text)
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    return _SECRET_PAIR.sub(lambda m: f"{m['key']}{m['sep']}{REDACTED}", text)


def redact_value(value: Any) -> Any:
    """Redact every string inside a JSON-like value; keys that name a secret lose their value entirely."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {
            key: REDACTED if _names_secret(str(key)) else redact_value(item) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    return value


def _names_secret(key: str) -> bool:
    lowered = key.lower()
    return any(
        word in lowered for word in ("password", "passphrase", "secret", "token", "private_key", "api_key")
    )


class RedactingFilter(logging.Filter):
    """A logging filter that passes every message, traceback and extra field through `redact`.

    Installed on the console handler (fdm/settings.py LOGGING), so nothing any library logs, a driver's error
    quoting a connection string included, reaches the log with a password, token or key in it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        if record.exc_info:
            # Formatted here, once, so that the redacted text is what formatters print.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        for key, value in extra_fields(record).items():
            setattr(record, key, REDACTED if _names_secret(key) else redact_value(value))
        return True
