"""Writes of notifications: open and resolve incidents, send their messages, and watch values over time.

The public API for code that detects problems is `incident_open` and `incident_resolve` (docs/notifications.md):
call `incident_open` each time the problem is seen and `incident_resolve` when it has cleared. Each channel that
wants the incident gets one message when it opens and one when it resolves, however often it is seen between.
Messages are sent by the task-queue workers (`tasks.deliver`), after the caller's transaction commits.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from fdm.notifications import selectors, transports
from fdm.notifications.choices import ChannelKind, DeliveryStatus, IncidentKind, IncidentStatus, Message
from fdm.notifications.messages import render
from fdm.notifications.models import Channel, Delivery, Incident, Observation
from fdm.notifications.transports import DeliveryFailed, Outgoing

logger = logging.getLogger("fdm.notifications")

DELIVER_TASK = "fdm.notifications.tasks.deliver"
RETRY_SCHEDULE_PREFIX = "fdm-notify-retry-"
TITLE_LENGTH = Incident._meta.get_field("title").max_length or 300
ERROR_LENGTH = 1000


def incident_open(*, kind: str, key: str, title: str, table: str = "", detail: str = "") -> Incident:
    """Open the incident (kind, key), or note that the open one was seen again; returns it.

    1. An open incident of the same kind and key is updated (title, detail, occurrences, last seen): no message.
    2. Otherwise a new one is created; a concurrent opener that got there first is found by the unique index
       on open incidents and updated instead.
    3. A new incident gets one delivery per channel that wants it, sent by a worker once this commits.
    """
    kind = _kind(kind)
    now = timezone.now()
    fields = {"title": title[:TITLE_LENGTH], "detail": detail, "table": table}
    with transaction.atomic():
        existing = _open_incident(kind, key)
        if existing is not None:
            return _seen_again(existing, now=now, **fields)
        try:
            with transaction.atomic():
                incident = Incident.objects.create(
                    kind=kind, key=key, opened_at=now, last_seen_at=now, **fields
                )
        except IntegrityError:
            existing = _open_incident(kind, key)
            if existing is None:
                raise
            return _seen_again(existing, now=now, **fields)
        channels = selectors.channels_for(kind=kind, table=table)
        _deliveries_create(incident, Message.OPENED, channels)
    # Debug only: the incident is on record, and a foreground command (sync_table) keeps its stderr to the error.
    logger.debug("incident opened: %s (%s %s), %s channel(s)", incident.title, kind, key, len(channels))
    return incident


def incident_resolve(
    *, kind: str, key: str, resolution: str = "", now: datetime | None = None
) -> Incident | None:
    """Resolve the open incident (kind, key), if there is one, and tell the channels that were told it opened.

    Returns the resolved incident, or None when none was open (calling it for a healthy thing is cheap).
    """
    kind = _kind(kind)
    with transaction.atomic():
        incident = _open_incident(kind, key)
        if incident is None:
            return None
        incident.status = IncidentStatus.RESOLVED
        incident.resolved_at = now or timezone.now()
        incident.resolution = resolution
        incident.save(update_fields=["status", "resolved_at", "resolution"])
        told = incident.deliveries.filter(message=Message.OPENED).values_list("channel_id", flat=True)
        channels = list(Channel.objects.filter(pk__in=set(told), enabled=True).order_by("pk"))
        _deliveries_create(incident, Message.RESOLVED, channels)
    logger.debug("incident resolved: %s (%s %s)", incident.title, kind, key)
    return incident


def channel_test_send(*, channel: Channel) -> Delivery:
    """Send a test message to the channel now, in this process, and record the delivery (one attempt)."""
    delivery = Delivery.objects.create(
        channel=channel, channel_name=channel.name, message=Message.TEST, status=DeliveryStatus.SENDING
    )
    delivery, _ = _attempt(delivery, channel)
    return delivery


def delivery_send(*, delivery_id: int) -> Delivery:
    """Send a pending delivery (a worker's task).

    1. Claim it with a conditional update (pending -> sending): a task delivered twice sends once.
    2. Render the message and send it through the channel's transport.
    3. Record the outcome; a failure that may pass is retried as a new delivery after a backoff that doubles
       each time (FDM_NOTIFY_BACKOFF_SECONDS), up to FDM_NOTIFY_MAX_ATTEMPTS attempts.
    """
    claimed = Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.SENDING
    )
    delivery = Delivery.objects.select_related("channel", "incident").get(pk=delivery_id)
    if not claimed:
        logger.info("delivery #%s is %s, not pending; nothing to do", delivery.pk, delivery.status)
        return delivery
    if delivery.channel is None:
        return _record(delivery, error="the channel was deleted before the message was sent")
    if not delivery.channel.enabled:
        return _record(delivery, error="the channel was disabled before the message was sent")
    delivery, retryable = _attempt(delivery, delivery.channel)
    if retryable:
        delivery_retry(delivery=delivery)
    return delivery


def delivery_retry(*, delivery: Delivery) -> Delivery | None:
    """Queue the next attempt of a failed delivery; None when no attempts are left."""
    if delivery.attempt >= settings.FDM_NOTIFY_MAX_ATTEMPTS:
        logger.warning("%s: no attempts left (%s)", delivery, delivery.error)
        return None
    delay = settings.FDM_NOTIFY_BACKOFF_SECONDS * 2 ** (delivery.attempt - 1)
    not_before = timezone.now() + timedelta(seconds=delay) if delay > 0 else None
    with transaction.atomic():
        retry = Delivery.objects.create(
            channel=delivery.channel,
            channel_name=delivery.channel_name,
            incident=delivery.incident,
            message=delivery.message,
            attempt=delivery.attempt + 1,
            retry_of=delivery,
            not_before=not_before,
        )
        if not_before is None:
            _enqueue(retry)
        else:
            # The task queue cannot delay a task: a one-off schedule hands it over when the backoff ends.
            Schedule.objects.create(
                name=f"{RETRY_SCHEDULE_PREFIX}{retry.pk}",
                func=DELIVER_TASK,
                args=str(retry.pk),
                schedule_type=Schedule.ONCE,
                repeats=-1,  # a ONCE schedule with negative repeats deletes itself after firing
                next_run=not_before,
            )
    return retry


def observation_record(*, kind: str, key: str, value: str, now: datetime | None = None) -> Observation:
    """Note that (kind, key) holds `value` now; `since` stays when the value is the one seen before."""
    now = now or timezone.now()
    with transaction.atomic():
        observation, created = Observation.objects.select_for_update().get_or_create(
            kind=kind, key=key, defaults={"value": value, "since": now, "seen_at": now}
        )
        if not created:
            if observation.value != value:
                observation.value, observation.since = value, now
            observation.seen_at = now
            observation.save(update_fields=["value", "since", "seen_at"])
    return observation


def observation_clear(*, kind: str, key: str) -> None:
    Observation.objects.filter(kind=kind, key=key).delete()


def _kind(kind: str) -> IncidentKind:
    try:
        return IncidentKind(kind)
    except ValueError:
        raise ValueError(
            f"{kind!r} is not an incident kind; expected one of {', '.join(IncidentKind.values)}"
        ) from None


def _open_incident(kind: str, key: str) -> Incident | None:
    return Incident.objects.select_for_update().filter(kind=kind, key=key, status=IncidentStatus.OPEN).first()


def _seen_again(incident: Incident, *, now: datetime, title: str, detail: str, table: str) -> Incident:
    Incident.objects.filter(pk=incident.pk).update(
        occurrences=F("occurrences") + 1, last_seen_at=now, title=title, detail=detail, table=table
    )
    incident.refresh_from_db()
    return incident


def _deliveries_create(incident: Incident, message: Message, channels: list[Channel]) -> None:
    for channel in channels:
        _enqueue(
            Delivery.objects.create(
                channel=channel, channel_name=channel.name, incident=incident, message=message
            )
        )


def _enqueue(delivery: Delivery) -> None:
    pk = delivery.pk
    transaction.on_commit(
        lambda: async_task(DELIVER_TASK, pk, task_name=f"notify-{pk}", group="notifications")
    )


def _attempt(delivery: Delivery, channel: Channel) -> tuple[Delivery, bool]:
    """Send the delivery's message and record how it went; also whether a failure is worth a retry."""
    outgoing = render(delivery.message, delivery.incident, channel_name=channel.name)
    try:
        code = _send(channel, delivery, outgoing)
    except DeliveryFailed as exc:
        return _record(delivery, error=str(exc), code=exc.code), exc.retryable
    except Exception as exc:  # a bug in a transport: recorded, never retried, never lost silently
        logger.exception("%s: unexpected error", delivery)
        return _record(delivery, error=f"unexpected error: {type(exc).__name__}: {exc}"), False
    return _record(delivery, code=code), False


def _send(channel: Channel, delivery: Delivery, outgoing: Outgoing) -> int:
    what = f"channel {channel.name!r}"
    if channel.kind == ChannelKind.EMAIL:
        return transports.send_email(channel.recipient_list, outgoing)
    url = channel.url or transports.secret_from_env(channel.url_env, what=what)
    if channel.kind == ChannelKind.WEBHOOK:
        secret = transports.secret_from_env(channel.secret_env, what=what)
        event = str(outgoing.payload["event"])
        return transports.post_webhook(url, secret, outgoing, delivery_id=delivery.pk, event=event)
    return transports.post_slack(url, outgoing)


def _record(delivery: Delivery, *, error: str = "", code: int | None = None) -> Delivery:
    delivery.status = DeliveryStatus.FAILED if error else DeliveryStatus.SENT
    delivery.error = error[:ERROR_LENGTH]
    delivery.response_code = code
    delivery.finished_at = timezone.now()
    delivery.save(update_fields=["status", "error", "response_code", "finished_at"])
    (logger.warning if error else logger.info)("%s%s", delivery, f": {delivery.error}" if error else "")
    return delivery
