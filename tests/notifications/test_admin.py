"""The admin configures channels and sends them a test message; incidents and deliveries are read-only there."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from fdm.notifications.choices import ChannelKind, DeliveryStatus, IncidentKind, Message
from fdm.notifications.models import Channel, Delivery
from fdm.notifications.services import incident_open

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    return client


def test_the_test_message_action_really_sends_and_reports_each_channel(
    admin_client, make_channel, http_receiver
):
    working = make_channel(name="ops", url=http_receiver.url())
    broken = make_channel(name="gone", url=http_receiver.url("/gone"))
    http_receiver.script = [410, 200]  # channels are tested in name order: "gone" first, then "ops"

    response = admin_client.post(
        reverse("admin:notifications_channel_changelist"),
        {"action": "send_test_message", "_selected_action": [working.pk, broken.pk]},
        follow=True,
    )

    shown = [str(message) for message in response.context["messages"]]
    assert [json.loads(r.body)["event"] for r in http_receiver.requests] == ["test", "test"]
    assert [r.path for r in http_receiver.requests] == ["/gone", "/hook"]
    assert shown == [
        f"gone: http://127.0.0.1:{http_receiver.port} answered HTTP 410 Gone",
        "ops: test message sent (200).",
    ]
    recorded = Delivery.objects.filter(message=Message.TEST).order_by("id")
    assert [(d.channel_name, d.status, d.response_code, d.attempt) for d in recorded] == [
        ("gone", DeliveryStatus.FAILED, 410, 1),
        ("ops", DeliveryStatus.SENT, 200, 1),
    ]


def test_a_channel_is_configured_in_the_admin_with_events_tables_and_a_secret_by_name(admin_client):
    response = admin_client.post(
        reverse("admin:notifications_channel_add"),
        {
            "name": "finance-hook",
            "kind": ChannelKind.WEBHOOK,
            "enabled": "on",
            "events": [IncidentKind.RUN_FAILED, IncidentKind.TABLE_STALE],
            "tables": "ledger, fx",
            "url": "https://hooks.example.com/fdm",
            "secret_env": "FDM_CHANNEL_FINANCE_SECRET",
        },
    )

    assert response.status_code == 302, response.content[:2000]
    channel = Channel.objects.get(name="finance-hook")
    assert (channel.events, channel.tables) == (["run_failed", "table_stale"], ["ledger", "fx"])
    assert channel.secret_env == "FDM_CHANNEL_FINANCE_SECRET"


def test_a_webhook_without_a_secret_or_naming_another_setting_is_refused(admin_client):
    response = admin_client.post(
        reverse("admin:notifications_channel_add"),
        {
            "name": "hook",
            "kind": ChannelKind.WEBHOOK,
            "url": "https://h.example.com",
            "secret_env": "SECRET_KEY",
        },
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "starting with FDM_CHANNEL_" in str(errors["secret_env"])
    assert not Channel.objects.exists()


def test_incidents_and_deliveries_can_be_read_but_not_changed(admin_client, make_channel):
    make_channel(url="http://127.0.0.1:9/hook")
    incident = incident_open(kind=IncidentKind.RUN_FAILED, key="ledger", table="ledger", title="Sync failed")
    delivery = Delivery.objects.get()

    assert (
        admin_client.get(reverse("admin:notifications_incident_change", args=[incident.pk])).status_code
        == 200
    )
    assert admin_client.get(reverse("admin:notifications_delivery_changelist")).status_code == 200
    page = admin_client.get(reverse("admin:notifications_delivery_change", args=[delivery.pk]))
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert admin_client.get(reverse("admin:notifications_incident_add")).status_code == 403
    assert (
        admin_client.post(reverse("admin:notifications_delivery_delete", args=[delivery.pk])).status_code
        == 403
    )


def test_the_admin_front_page_lists_channels_incidents_and_deliveries_in_their_sections(admin_client):
    page = admin_client.get(reverse("admin:index")).content.decode()

    for model in ("channel", "incident", "delivery"):
        assert reverse(f"admin:notifications_{model}_changelist") in page
