"""Fixtures for notifications: channels made through the ORM, and a way to run the deliveries a worker would."""

from __future__ import annotations

from collections.abc import Callable

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
        due = Q(status=DeliveryStatus.PENDING) & (Q(not_before__isnull=True) | Q(not_before__lte=timezone.now()))
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
