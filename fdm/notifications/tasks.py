"""Task-queue entry points: ids in, a service at once."""

from __future__ import annotations

from fdm.notifications import services


def deliver(delivery_id: int) -> str:
    """Send one pending delivery; returns its status (kept as the task's result)."""
    return services.delivery_send(delivery_id=delivery_id).status
