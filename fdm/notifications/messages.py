"""What a message says: a subject and a text for people, and a JSON payload for programs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from fdm.notifications.choices import IncidentKind, Message
from fdm.notifications.models import Incident
from fdm.notifications.transports import Outgoing

PAYLOAD_VERSION = 1


def render(message: str, incident: Incident | None, *, channel_name: str) -> Outgoing:
    """The message `message` (opened, resolved, test) about `incident` (None for a test)."""
    now = timezone.now()
    if incident is None:
        text = f"fdm test message for the channel {channel_name!r}: if you read this, the channel works."
        return Outgoing(
            subject=f"[fdm] test message ({channel_name})",
            text=text,
            payload={"version": PAYLOAD_VERSION, "event": "test", "sent_at": _iso(now), "text": text},
        )
    state = "RESOLVED" if message == Message.RESOLVED else "OPEN"
    subject = f"[fdm] {state}: {incident.title}"
    lines = [f"{state}: {incident.title}", f"Kind: {IncidentKind(incident.kind).label}"]
    if incident.table:
        lines.append(f"Table: {incident.table}")
    lines.append(f"Opened: {_iso(incident.opened_at)}")
    if message == Message.RESOLVED and incident.resolved_at:
        lines.append(f"Resolved: {_iso(incident.resolved_at)}")
        if incident.resolution:
            lines.append(incident.resolution)
    elif incident.detail:
        lines.append(incident.detail)
    text = "\n".join(lines)
    return Outgoing(
        subject=subject,
        text=text,
        payload={
            "version": PAYLOAD_VERSION,
            "event": f"incident.{message}",
            "sent_at": _iso(now),
            "text": text,
            "incident": incident_payload(incident),
        },
    )


def incident_payload(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.pk,
        "kind": incident.kind,
        "key": incident.key,
        "table": incident.table,
        "status": incident.status,
        "title": incident.title,
        "detail": incident.detail,
        "occurrences": incident.occurrences,
        "opened_at": _iso(incident.opened_at),
        "resolved_at": _iso(incident.resolved_at) if incident.resolved_at else None,
        "resolution": incident.resolution,
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
