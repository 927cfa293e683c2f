"""Reads of notifications: which channels want an incident, and the incidents to list."""

from __future__ import annotations

from django.db.models import QuerySet

from fdm.notifications.choices import IncidentStatus
from fdm.notifications.models import Channel, Incident, Observation


def channels_for(*, kind: str, table: str) -> list[Channel]:
    """The enabled channels that receive incidents of `kind` about `table`."""
    return [channel for channel in Channel.objects.filter(enabled=True) if channel.wants(kind, table)]


def incident_list(*, status: str | None = None, kind: str | None = None) -> QuerySet[Incident]:
    incidents = Incident.objects.all()
    if status:
        incidents = incidents.filter(status=status)
    if kind:
        incidents = incidents.filter(kind=kind)
    return incidents.order_by("-opened_at", "-id")


def open_incident_keys(*, kind: str) -> set[str]:
    return set(Incident.objects.filter(kind=kind, status=IncidentStatus.OPEN).values_list("key", flat=True))


def observation_list(*, kind: str) -> list[Observation]:
    """Every value watched under `kind` (one per key), as last seen."""
    return list(Observation.objects.filter(kind=kind).order_by("key"))
