"""The choice sets of notifications: channel kinds, incident kinds and states, delivery messages and states."""

from __future__ import annotations

from django.db import models


class ChannelKind(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook (signed JSON)"
    SLACK = "slack", "Slack-compatible incoming webhook"


class IncidentKind(models.TextChoices):
    """What went wrong. The key of an incident says where (a table's name for every kind fdm raises today)."""

    RUN_FAILED = "run_failed", "Run failed"
    TABLE_STALE = "table_stale", "Table stale past its SLA"
    RECONCILE_MISMATCH = "reconcile_mismatch", "Reconciliation mismatch"
    DELETE_GUARD = "delete_guard", "Delete guard tripped"
    KEY_ROTATION_STUCK = "key_rotation_stuck", "Key rotation stuck"


class IncidentStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"


class Message(models.TextChoices):
    """Which message a delivery carries: one when an incident opens, one when it resolves, or a test."""

    OPENED = "opened", "Incident opened"
    RESOLVED = "resolved", "Incident resolved"
    TEST = "test", "Test message"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # queued, or waiting for its backoff
    SENDING = "sending", "Sending"  # claimed by a worker
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"  # this attempt failed; a later attempt may follow

    @classmethod
    def finished(cls) -> frozenset[str]:
        return frozenset({cls.SENT, cls.FAILED})
