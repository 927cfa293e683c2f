"""Fixtures for notification tests (a pytest plugin: engine tests use them too): real receivers, an HTTP server
on 127.0.0.1 that records what it is sent and answers with the status codes a test scripts, and an SMTP server
(aiosmtpd) that keeps the mail it accepts; channels made through the ORM; and the deliveries a worker would run."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db.models import Q
from django.utils import timezone

from fdm.notifications import tasks
from fdm.notifications.choices import ChannelKind, DeliveryStatus, IncidentKind
from fdm.notifications.models import Channel, Delivery

WEBHOOK_SECRET = "s3cret-for-tests-only-0123456789"


@pytest.fixture
def make_channel(db, monkeypatch) -> Callable[..., Channel]:
    def make(kind: str = ChannelKind.WEBHOOK, **overrides) -> Channel:
        fields = {
            "name": overrides.pop("name", f"{kind}-{Channel.objects.count() + 1}"),
            "kind": kind,
            "events": list(IncidentKind.values),
        }
        if kind == ChannelKind.WEBHOOK:
            monkeypatch.setenv("FDM_CHANNEL_TEST_SECRET", WEBHOOK_SECRET)
            fields["secret_env"] = "FDM_CHANNEL_TEST_SECRET"
        fields.update(overrides)
        channel = Channel(**fields)
        channel.full_clean()
        channel.save()
        return channel

    return make


@pytest.fixture
def deliver_pending() -> Callable[[], list[Delivery]]:
    """Run the task a worker runs for every pending delivery whose backoff is over, oldest first, until none is
    left (a retry still waiting for its schedule stays pending)."""

    def run() -> list[Delivery]:
        done = []
        due = Q(status=DeliveryStatus.PENDING) & (
            Q(not_before__isnull=True) | Q(not_before__lte=timezone.now())
        )
        while pending := list(Delivery.objects.filter(due).order_by("id")):
            for delivery in pending:
                tasks.deliver(delivery.pk)
                delivery.refresh_from_db()
                done.append(delivery)
        return done

    return run


@pytest.fixture
def email_settings(settings, smtp_server):
    """Django's SMTP backend (pytest-django installs the in-memory one) pointed at the test SMTP server."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_server.port
    settings.DEFAULT_FROM_EMAIL = "fdm@example.com"
    return settings


@dataclass
class Received:
    path: str
    headers: Message  # names are case-insensitive, as in HTTP
    body: bytes


@dataclass
class HttpReceiver:
    """Records every POST; answers with the next scripted status (200 once the script is used up)."""

    port: int
    requests: list[Received] = field(default_factory=list)
    script: list[int] = field(default_factory=list)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(port=0)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                receiver.requests.append(Received(self.path, self.headers, body))
                status = receiver.script.pop(0) if receiver.script else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:  # quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


@dataclass
class SmtpServer:
    port: int
    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)  # scripted replies to DATA, then 250


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    from aiosmtpd.controller import Controller

    server = SmtpServer(port=_free_port())

    class Handler:
        async def handle_DATA(self, smtp: object, session: object, envelope: object) -> str:
            if server.replies:
                return server.replies.pop(0)
            server.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))  # type: ignore[attr-defined]
            server.messages.append(message_from_bytes(envelope.content))  # type: ignore[attr-defined]
            return "250 Message accepted for delivery"

    controller = Controller(Handler(), hostname="127.0.0.1", port=server.port)
    controller.start()
    yield server
    controller.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
