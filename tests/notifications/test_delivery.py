"""Incidents become one message per channel when they open and one when they resolve, sent to a real HTTP
receiver and a real SMTP server, signed, retried when the receiver fails, and recorded without secrets."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from fdm.notifications.choices import ChannelKind, DeliveryStatus, IncidentKind, IncidentStatus, Message
from fdm.notifications.models import Delivery, Incident
from fdm.notifications.services import (
    DELIVER_TASK,
    channel_test_send,
    incident_open,
    incident_resolve,
    observation_record,
)
from tests.notifications.receivers import WEBHOOK_SECRET

pytestmark = pytest.mark.django_db(transaction=True)  # messages leave after the commit, as in production


def open_run_failed(table: str = "transactions", detail: str = "run #1 failed") -> Incident:
    return incident_open(
        kind=IncidentKind.RUN_FAILED, key=table, table=table, title=f"Sync of {table} failed", detail=detail
    )


def test_a_webhook_message_carries_an_hmac_sha256_signature_of_its_exact_body(
    make_channel, http_receiver, deliver_pending
):
    channel = make_channel(url=http_receiver.url())
    incident = open_run_failed(detail="transactions: column AMOUNT overflows numeric(18,2)")

    (delivery,) = deliver_pending()

    (request,) = http_receiver.requests
    expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-FDM-Signature"] == expected
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-FDM-Event"] == "incident.opened"
    assert request.headers["X-FDM-Delivery"] == str(delivery.pk)
    payload = json.loads(request.body)
    assert payload["event"] == "incident.opened"
    assert payload["incident"]["id"] == incident.pk
    assert (payload["incident"]["kind"], payload["incident"]["key"]) == ("run_failed", "transactions")
    assert "column AMOUNT overflows" in payload["incident"]["detail"]
    assert (delivery.channel, delivery.status, delivery.response_code) == (channel, DeliveryStatus.SENT, 200)


def test_an_incident_seen_again_sends_nothing_and_its_resolution_sends_one_message(
    make_channel, http_receiver, deliver_pending
):
    make_channel(url=http_receiver.url())
    first = open_run_failed(detail="run #1 failed")
    second = open_run_failed(detail="run #2 failed")
    deliver_pending()

    assert first.pk == second.pk
    second.refresh_from_db()
    assert (second.occurrences, second.detail) == (2, "run #2 failed")
    assert [json.loads(r.body)["event"] for r in http_receiver.requests] == ["incident.opened"]

    resolved = incident_resolve(
        kind=IncidentKind.RUN_FAILED, key="transactions", resolution="run #3 succeeded"
    )
    assert incident_resolve(kind=IncidentKind.RUN_FAILED, key="transactions") is None  # nothing open now
    deliver_pending()

    assert resolved is not None and resolved.status == IncidentStatus.RESOLVED
    events = [json.loads(r.body)["event"] for r in http_receiver.requests]
    assert events == ["incident.opened", "incident.resolved"]
    assert json.loads(http_receiver.requests[1].body)["incident"]["resolution"] == "run #3 succeeded"

    again = open_run_failed(detail="run #4 failed")  # a new failure after the resolution: a new incident
    deliver_pending()
    assert again.pk != first.pk
    assert len(http_receiver.requests) == 3


def test_a_failing_receiver_is_retried_until_it_accepts(
    make_channel, http_receiver, deliver_pending, settings
):
    settings.FDM_NOTIFY_BACKOFF_SECONDS = 0  # no wait between attempts here; the backoff has its own test
    make_channel(url=http_receiver.url())
    http_receiver.script = [500, 503]
    incident = open_run_failed()

    attempts = deliver_pending()

    assert [(d.attempt, d.status, d.response_code) for d in attempts] == [
        (1, DeliveryStatus.FAILED, 500),
        (2, DeliveryStatus.FAILED, 503),
        (3, DeliveryStatus.SENT, 200),
    ]
    assert "answered HTTP 500" in attempts[0].error
    assert len(http_receiver.requests) == 3
    bodies = {json.loads(r.body)["incident"]["id"] for r in http_receiver.requests}
    assert bodies == {incident.pk}


def test_retries_wait_for_a_backoff_that_doubles_and_stop_after_the_last_attempt(
    make_channel, http_receiver, deliver_pending, settings
):
    settings.FDM_NOTIFY_BACKOFF_SECONDS = 30
    settings.FDM_NOTIFY_MAX_ATTEMPTS = 2
    make_channel(url=http_receiver.url())
    http_receiver.script = [500, 500]
    open_run_failed()

    (first,) = deliver_pending()  # the retry waits in a one-off schedule, not in the queue
    retry = Delivery.objects.get(retry_of=first)
    schedule = Schedule.objects.get(func=DELIVER_TASK, args=str(retry.pk))
    assert schedule.schedule_type == Schedule.ONCE
    assert timedelta(seconds=25) < schedule.next_run - timezone.now() <= timedelta(seconds=30)

    Delivery.objects.filter(pk=retry.pk).update(not_before=None)
    (second,) = deliver_pending()
    assert (second.attempt, second.status) == (2, DeliveryStatus.FAILED)
    assert not Delivery.objects.filter(retry_of=second).exists()  # FDM_NOTIFY_MAX_ATTEMPTS reached


def test_a_receiver_that_refuses_the_message_is_not_retried(make_channel, http_receiver, deliver_pending):
    make_channel(url=http_receiver.url())
    http_receiver.script = [404]
    open_run_failed()

    attempts = deliver_pending()

    assert [(d.attempt, d.status, d.response_code) for d in attempts] == [(1, DeliveryStatus.FAILED, 404)]


def test_a_missing_secret_fails_the_delivery_naming_the_variable_and_nothing_is_sent(
    make_channel, http_receiver, deliver_pending, monkeypatch
):
    make_channel(url=http_receiver.url())
    monkeypatch.delenv("FDM_CHANNEL_TEST_SECRET")
    open_run_failed()

    (delivery,) = deliver_pending()

    assert delivery.status == DeliveryStatus.FAILED
    assert "FDM_CHANNEL_TEST_SECRET" in delivery.error and "not set" in delivery.error
    assert http_receiver.requests == []


def test_a_slack_url_read_from_the_environment_gets_text_and_is_never_recorded(
    make_channel, http_receiver, deliver_pending, monkeypatch, settings
):
    settings.FDM_NOTIFY_BACKOFF_SECONDS = 0
    token_url = http_receiver.url("/services/T000/B000/tokenXYZ")
    monkeypatch.setenv("FDM_CHANNEL_SLACK_URL", token_url)
    make_channel(ChannelKind.SLACK, url_env="FDM_CHANNEL_SLACK_URL")
    open_run_failed(detail="transactions: the source is unreachable")
    http_receiver.script = [500]

    deliver_pending()

    assert [r.path for r in http_receiver.requests] == ["/services/T000/B000/tokenXYZ"] * 2
    payload = json.loads(http_receiver.requests[-1].body)
    assert list(payload) == ["text"]
    assert payload["text"].startswith("OPEN: Sync of transactions failed")
    assert "the source is unreachable" in payload["text"]
    recorded = " ".join(f"{d.error} {d.channel_name}" for d in Delivery.objects.all())
    assert "tokenXYZ" not in recorded and "answered HTTP 500" in recorded


def test_email_goes_through_the_smtp_backend_to_every_recipient(
    make_channel, smtp_server, email_settings, deliver_pending
):
    make_channel(ChannelKind.EMAIL, recipients="ops@example.com, finance@example.com")
    open_run_failed(detail="transactions: login failed")
    incident_resolve(kind=IncidentKind.RUN_FAILED, key="transactions", resolution="run #2 succeeded")

    deliveries = deliver_pending()

    assert [(d.message, d.status, d.response_code) for d in deliveries] == [
        (Message.OPENED, DeliveryStatus.SENT, 250),
        (Message.RESOLVED, DeliveryStatus.SENT, 250),
    ]
    assert [envelope for envelope in smtp_server.envelopes] == [
        ("fdm@example.com", ["ops@example.com", "finance@example.com"])
    ] * 2
    opened, resolved = smtp_server.messages
    assert opened["Subject"] == "[fdm] OPEN: Sync of transactions failed"
    assert "transactions: login failed" in opened.get_payload()
    assert resolved["Subject"] == "[fdm] RESOLVED: Sync of transactions failed"
    assert "run #2 succeeded" in resolved.get_payload()


def test_a_mail_server_that_asks_to_try_later_gets_the_message_again_and_a_refusal_is_final(
    make_channel, smtp_server, email_settings, deliver_pending, settings
):
    settings.FDM_NOTIFY_BACKOFF_SECONDS = 0
    make_channel(ChannelKind.EMAIL, recipients="ops@example.com")
    smtp_server.replies = ["451 4.3.0 Try again later"]
    open_run_failed("ledger")

    later = deliver_pending()

    assert [(d.attempt, d.status, d.response_code) for d in later] == [
        (1, DeliveryStatus.FAILED, 451),
        (2, DeliveryStatus.SENT, 250),
    ]
    assert "replied 451" in later[0].error
    assert len(smtp_server.messages) == 1

    smtp_server.replies = ["554 5.7.1 Rejected"]
    open_run_failed("fx")
    refused = deliver_pending()
    assert [(d.attempt, d.status, d.response_code) for d in refused] == [(1, DeliveryStatus.FAILED, 554)]


def test_an_unreachable_mail_server_is_retried(make_channel, email_settings, deliver_pending, settings):
    settings.FDM_NOTIFY_BACKOFF_SECONDS = 0
    settings.FDM_NOTIFY_MAX_ATTEMPTS = 2
    settings.EMAIL_PORT = _closed_port()
    make_channel(ChannelKind.EMAIL, recipients="ops@example.com")
    open_run_failed()

    attempts = deliver_pending()

    assert [(d.attempt, d.status) for d in attempts] == [
        (1, DeliveryStatus.FAILED),
        (2, DeliveryStatus.FAILED),
    ]
    assert "cannot send through the mail server 127.0.0.1" in attempts[0].error


def test_channels_get_only_the_events_and_tables_they_chose(make_channel, http_receiver, deliver_pending):
    make_channel(name="all", url=http_receiver.url("/all"))
    make_channel(name="stale-only", url=http_receiver.url("/stale"), events=[IncidentKind.TABLE_STALE])
    make_channel(name="ledger-only", url=http_receiver.url("/ledger"), tables=["ledger"])
    make_channel(name="off", url=http_receiver.url("/off"), enabled=False)
    open_run_failed("transactions")
    open_run_failed("ledger")
    incident_open(kind=IncidentKind.TABLE_STALE, key="ledger", table="ledger", title="ledger is stale")

    deliver_pending()

    sent = sorted(
        (r.path, json.loads(r.body)["incident"]["kind"], json.loads(r.body)["incident"]["key"])
        for r in http_receiver.requests
    )
    assert sent == [
        ("/all", "run_failed", "ledger"),
        ("/all", "run_failed", "transactions"),
        ("/all", "table_stale", "ledger"),
        ("/ledger", "run_failed", "ledger"),
        ("/ledger", "table_stale", "ledger"),
        ("/stale", "table_stale", "ledger"),
    ]


def test_two_processes_opening_the_same_incident_at_once_open_one(
    make_channel, http_receiver, deliver_pending
):
    make_channel(url=http_receiver.url())
    start = threading.Barrier(2)
    opened: list[int] = []

    def open_it(detail: str) -> None:
        try:
            start.wait()
            opened.append(open_run_failed(detail=detail).pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=open_it, args=(f"seen by {n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deliver_pending()

    assert len(opened) == 2 and opened[0] == opened[1]
    assert Incident.objects.get().occurrences == 2
    assert len(http_receiver.requests) == 1


def test_a_secret_may_come_from_a_file(make_channel, http_receiver, deliver_pending, monkeypatch, tmp_path):
    secret_file = tmp_path / "hook_secret"
    secret_file.write_text("from-a-file-0123456789\n")
    monkeypatch.setenv("FDM_CHANNEL_FILE_SECRET_FILE", str(secret_file))
    make_channel(url=http_receiver.url(), secret_env="FDM_CHANNEL_FILE_SECRET")
    open_run_failed()

    deliver_pending()

    (request,) = http_receiver.requests
    signed = "sha256=" + hmac.new(b"from-a-file-0123456789", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-FDM-Signature"] == signed


def test_an_incident_opened_in_a_transaction_that_rolls_back_leaves_nothing_to_send(
    make_channel, http_receiver
):
    make_channel(url=http_receiver.url())

    with pytest.raises(RuntimeError), transaction.atomic():
        open_run_failed()
        raise RuntimeError("the caller's work failed")

    assert not Incident.objects.exists() and not Delivery.objects.exists()
    assert OrmQ.objects.count() == 0  # no task was queued


def test_a_channel_disabled_before_its_message_left_sends_nothing(
    make_channel, http_receiver, deliver_pending
):
    channel = make_channel(url=http_receiver.url())
    open_run_failed()
    channel.enabled = False
    channel.save()

    (delivery,) = deliver_pending()

    assert (delivery.status, delivery.error) == (
        DeliveryStatus.FAILED,
        "the channel was disabled before the message was sent",
    )
    assert http_receiver.requests == []


def test_an_unknown_incident_kind_is_refused_naming_the_kinds(db):
    with pytest.raises(ValueError, match="'mystery' is not an incident kind; expected one of run_failed"):
        incident_open(kind="mystery", key="x", title="x")
    assert not Incident.objects.exists()


def test_a_test_message_is_sent_at_once_and_recorded(make_channel, http_receiver):
    channel = make_channel(url=http_receiver.url())

    delivery = channel_test_send(channel=channel)

    assert (delivery.message, delivery.status, delivery.response_code) == (
        Message.TEST,
        DeliveryStatus.SENT,
        200,
    )
    (request,) = http_receiver.requests
    assert json.loads(request.body)["event"] == "test"


def test_an_observation_keeps_its_since_until_the_value_changes(db):
    start = timezone.now()
    first = observation_record(kind="k", key="t", value="10", now=start)
    same = observation_record(kind="k", key="t", value="10", now=start + timedelta(minutes=5))
    moved = observation_record(kind="k", key="t", value="7", now=start + timedelta(minutes=9))

    assert (first.since, same.since, moved.since) == (start, start, start + timedelta(minutes=9))
    assert same.seen_at == start + timedelta(minutes=5)


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
