"""Messages are sent by real django-q2 workers (`manage.py qcluster`), retries included."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from fdm.notifications.choices import ChannelKind, DeliveryStatus, IncidentKind, Message
from fdm.notifications.models import Delivery
from fdm.notifications.services import incident_open, incident_resolve
from tests.notifications.receivers import WEBHOOK_SECRET

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_worker_sends_the_webhook_after_a_failed_attempt_and_the_email(
    qcluster, make_channel, http_receiver, smtp_server, monkeypatch
):
    # The worker reads its settings from the environment, as in production.
    monkeypatch.setenv("EMAIL_HOST", "127.0.0.1")
    monkeypatch.setenv("EMAIL_PORT", str(smtp_server.port))
    monkeypatch.setenv("DEFAULT_FROM_EMAIL", "fdm@example.com")
    monkeypatch.setenv("FDM_NOTIFY_BACKOFF_SECONDS", "0")
    webhook = make_channel(url=http_receiver.url())
    email = make_channel(ChannelKind.EMAIL, recipients="ops@example.com")
    http_receiver.script = [500]
    incident = incident_open(
        kind=IncidentKind.DELETE_GUARD, key="ledger", table="ledger", title="Delete guard tripped on ledger"
    )

    with qcluster() as cluster:
        cluster.wait_for(
            lambda: (
                Delivery.objects.filter(channel=webhook, status=DeliveryStatus.SENT).exists()
                and Delivery.objects.filter(channel=email, status=DeliveryStatus.SENT).exists()
            ),
            timeout=90,
            what="the webhook's retry and the email to be sent",
        )
        incident_resolve(kind=IncidentKind.DELETE_GUARD, key="ledger", resolution="deletes allowed once")
        cluster.wait_for(
            lambda: (
                Delivery.objects.filter(message=Message.RESOLVED, status=DeliveryStatus.SENT).count() == 2
            ),
            timeout=60,
            what="the resolution to be sent to both channels",
        )

    webhook_attempts = list(
        Delivery.objects.filter(channel=webhook).order_by("id").values_list("message", "attempt", "status")
    )
    assert webhook_attempts == [
        (Message.OPENED, 1, DeliveryStatus.FAILED),
        (Message.OPENED, 2, DeliveryStatus.SENT),
        (Message.RESOLVED, 1, DeliveryStatus.SENT),
    ]
    assert len(http_receiver.requests) == 3
    for request in http_receiver.requests:
        signed = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["X-FDM-Signature"] == signed
        assert json.loads(request.body)["incident"]["id"] == incident.pk
    assert [m["Subject"] for m in smtp_server.messages] == [
        "[fdm] OPEN: Delete guard tripped on ledger",
        "[fdm] RESOLVED: Delete guard tripped on ledger",
    ]
