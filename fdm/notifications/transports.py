"""How a message leaves fdm: by email (Django's email backend), as a signed JSON POST, or as Slack's `{"text"}`.

Each sender returns the receiver's reply code, or raises `DeliveryFailed` saying whether a later attempt may
succeed. Errors name the setting or the receiver's host, never a secret: not the signing secret, and not the
path of a URL (a Slack URL's path is its token).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from fdm.env import ConfigurationError, env_value

SIGNATURE_HEADER = "X-FDM-Signature"
USER_AGENT = "fdm-notifications/1"
# Worth another attempt besides any 5xx: the receiver timed out, or asks to wait or to slow down.
RETRYABLE_HTTP = frozenset({408, 425, 429})


class DeliveryFailed(Exception):
    """A message was not delivered. `retryable`: a later attempt may succeed (a timeout, a 5xx, a 4xx reply
    of an SMTP server); otherwise retrying cannot help (a 4xx, a missing setting)."""

    def __init__(self, message: str, *, code: int | None = None, retryable: bool):
        super().__init__(message)
        self.code = code
        self.retryable = retryable


@dataclass(frozen=True)
class Outgoing:
    """A rendered message, ready for any channel kind."""

    subject: str
    text: str
    payload: dict[str, Any]


def signature(body: bytes, secret: str) -> str:
    """The `X-FDM-Signature` header's value: `sha256=` and the hex HMAC-SHA256 of the exact body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def secret_from_env(name: str, *, what: str) -> str:
    """The value of the environment variable `name` (or the file `NAME_FILE` names)."""
    try:
        value = env_value(name)
    except ConfigurationError as exc:
        raise DeliveryFailed(f"{what}: {exc}", retryable=False) from None
    if value is None:
        raise DeliveryFailed(
            f"{what}: the environment variable {name} (or {name}_FILE) is not set where the message is sent "
            "(the workers; the web process for a test message)",
            retryable=False,
        )
    return value.text


def send_email(recipients: list[str], outgoing: Outgoing) -> int:
    """Send through Django's email backend (EMAIL_HOST, EMAIL_PORT, ...); returns the SMTP reply code (250)."""
    connection = get_connection(fail_silently=False, timeout=settings.FDM_NOTIFY_TIMEOUT_SECONDS)
    email = EmailMessage(
        subject=outgoing.subject,
        body=outgoing.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        connection=connection,
    )
    try:
        email.send(fail_silently=False)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = sorted({code for code, _ in exc.recipients.values()})
        refused = ", ".join(sorted(exc.recipients))
        raise DeliveryFailed(
            f"the mail server refused the recipients {refused} (codes {codes})",
            code=codes[0] if codes else None,
            retryable=bool(codes) and all(400 <= code < 500 for code in codes),
        ) from None
    except smtplib.SMTPResponseException as exc:
        reply = (
            exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        )
        raise DeliveryFailed(
            f"the mail server {settings.EMAIL_HOST}:{settings.EMAIL_PORT} replied {exc.smtp_code} {reply}",
            code=exc.smtp_code,
            retryable=400 <= exc.smtp_code < 500,
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed(
            f"cannot send through the mail server {settings.EMAIL_HOST}:{settings.EMAIL_PORT}: "
            f"{type(exc).__name__}: {exc}",
            retryable=True,
        ) from None
    return 250


def post_webhook(url: str, secret: str, outgoing: Outgoing, *, delivery_id: int, event: str) -> int:
    """POST the payload as JSON, signed with HMAC-SHA256 of the body; returns the HTTP status."""
    body = json.dumps(outgoing.payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        SIGNATURE_HEADER: signature(body, secret),
        "X-FDM-Event": event,
        "X-FDM-Delivery": str(delivery_id),
    }
    return _post(url, body, headers)


def post_slack(url: str, outgoing: Outgoing) -> int:
    """POST `{"text": ...}` to a Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat, ...)."""
    return _post(url, json.dumps({"text": outgoing.text}).encode(), {})


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirected POST would become a GET elsewhere: a receiver that moved must be reconfigured.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryFailed("the channel's URL is not an http(s) URL", retryable=False)
    where = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"  # no path (Slack's token), no credentials
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
    )
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=settings.FDM_NOTIFY_TIMEOUT_SECONDS) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        raise DeliveryFailed(
            f"{where} answered HTTP {exc.code} {exc.reason}",
            code=exc.code,
            retryable=exc.code >= 500 or exc.code in RETRYABLE_HTTP,
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise DeliveryFailed(f"cannot reach {where}: {reason}", retryable=True) from None
