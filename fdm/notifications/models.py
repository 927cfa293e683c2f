"""Notification channels, the incidents they are told about, and every delivery attempt."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from fdm.notifications.choices import ChannelKind, DeliveryStatus, IncidentKind, IncidentStatus, Message

# Channels name the environment variable that holds a secret, never the secret. The prefix keeps a channel from
# pointing at another setting (a database password would otherwise become a webhook URL in an error message).
SECRET_ENV_PREFIX = "FDM_CHANNEL_"
SECRET_ENV_PATTERN = re.compile(rf"{SECRET_ENV_PREFIX}[A-Z0-9_]+")
TABLE_NAME_LENGTH = 200


def validate_secret_env(value: str) -> None:
    if value and not SECRET_ENV_PATTERN.fullmatch(value):
        raise ValidationError(
            f"{value!r} is not the name of an environment variable starting with {SECRET_ENV_PREFIX} "
            f"(upper-case letters, digits and _), e.g. {SECRET_ENV_PREFIX}OPS_WEBHOOK_SECRET"
        )


class Channel(models.Model):
    """Where notifications go: an email list, a signed JSON webhook, or a Slack-compatible incoming webhook.

    A channel receives the incident kinds listed in `events`, for the tables in `tables` (empty: every table).
    Secrets never live here: a webhook's signing secret, and a URL that carries a token (Slack's do), are read
    at send time from the environment variable the channel names (`NAME`, or the file `NAME_FILE` names).
    """

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    enabled = models.BooleanField(default=True)
    events = models.JSONField(default=list, blank=True, help_text="The incident kinds this channel receives.")
    tables = models.JSONField(
        default=list, blank=True, help_text="Table names this channel is limited to; empty: every table."
    )
    recipients = models.TextField(blank=True, help_text="Email: addresses, comma-separated.")
    url = models.URLField(
        max_length=500,
        blank=True,
        help_text="Webhook and Slack: the URL to POST to, when it holds no secret. Otherwise leave it empty "
        "and set the URL environment variable.",
    )
    url_env = models.CharField(
        max_length=100,
        blank=True,
        validators=[validate_secret_env],
        help_text=f"Webhook and Slack: the environment variable holding the URL (a Slack URL carries a token), "
        f"e.g. {SECRET_ENV_PREFIX}SLACK_URL.",
    )
    secret_env = models.CharField(
        max_length=100,
        blank=True,
        validators=[validate_secret_env],
        help_text=f"Webhook: the environment variable holding the signing secret, e.g. "
        f"{SECRET_ENV_PREFIX}OPS_WEBHOOK_SECRET.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        unknown = sorted(set(self.events or []) - set(IncidentKind.values))
        if unknown:
            errors["events"] = f"unknown incident kinds: {', '.join(unknown)}"
        if not isinstance(self.tables, list) or not all(isinstance(name, str) for name in self.tables):
            errors["tables"] = "expected a list of table names"
        if self.kind == ChannelKind.EMAIL and not self.recipient_list:
            errors["recipients"] = "an email channel needs at least one address"
        if self.kind in (ChannelKind.WEBHOOK, ChannelKind.SLACK) and bool(self.url) == bool(self.url_env):
            errors["url"] = "give either the URL or the environment variable that holds it (one of the two)"
        if self.kind == ChannelKind.WEBHOOK and not self.secret_env:
            errors["secret_env"] = "a webhook signs its messages: name the variable that holds the secret"
        if errors:
            raise ValidationError(errors)

    @property
    def recipient_list(self) -> list[str]:
        return [address.strip() for address in self.recipients.split(",") if address.strip()]

    def wants(self, kind: str, table: str) -> bool:
        """Whether this channel receives incidents of `kind` about `table` ('' for none)."""
        return kind in (self.events or []) and (not self.tables or not table or table in self.tables)


class Incident(models.Model):
    """Something that needs an operator's attention, from when it was first seen until it cleared.

    At most one incident per (kind, key) is open at a time (a partial unique index): seeing the same problem
    again updates it (`occurrences`, `detail`) instead of opening another, so each channel gets one message when
    it opens and one when it resolves.
    """

    kind = models.CharField(max_length=32, choices=IncidentKind.choices)
    key = models.CharField(max_length=300, help_text="What the incident is about, e.g. a table's name.")
    table = models.CharField(max_length=TABLE_NAME_LENGTH, blank=True)
    status = models.CharField(max_length=16, choices=IncidentStatus.choices, default=IncidentStatus.OPEN)
    title = models.CharField(max_length=300)
    detail = models.TextField(blank=True)
    occurrences = models.PositiveIntegerField(default=1)
    opened_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.TextField(blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "key"], condition=Q(status="open"), name="notifications_one_open_incident"
            )
        ]
        indexes = [models.Index(fields=["status", "kind"], name="notif_incident_status_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.key} ({self.status})"


class Delivery(models.Model):
    """One attempt to send one message to one channel: what was sent, how it went, never the secret.

    A failed attempt that may succeed later (a timeout, a 5xx, a refused connection) is followed by a new
    Delivery with `attempt` + 1 after a backoff, until FDM_NOTIFY_MAX_ATTEMPTS.
    """

    channel = models.ForeignKey(Channel, on_delete=models.SET_NULL, null=True, related_name="deliveries")
    channel_name = models.CharField(max_length=100, help_text="Kept when the channel is deleted.")
    incident = models.ForeignKey(
        Incident, on_delete=models.CASCADE, null=True, blank=True, related_name="deliveries"
    )
    message = models.CharField(max_length=16, choices=Message.choices)
    attempt = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    not_before = models.DateTimeField(null=True, blank=True, help_text="When a retry's backoff ends.")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    response_code = models.IntegerField(null=True, blank=True, help_text="HTTP status or SMTP reply code.")
    error = models.TextField(blank=True)
    retry_of = models.OneToOneField(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="retry"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        indexes = [models.Index(fields=["incident", "channel"], name="notif_delivery_incident_idx")]

    def __str__(self) -> str:
        return f"{self.get_message_display()} to {self.channel_name} (attempt {self.attempt}, {self.status})"


class Observation(models.Model):
    """A value watched over time, and since when it has held it: "no progress for N minutes" needs a memory.

    Keyed like incidents (kind, key). `since` moves only when the value changes; `seen_at` at every look.
    """

    kind = models.CharField(max_length=32)
    key = models.CharField(max_length=300)
    value = models.CharField(max_length=200)
    since = models.DateTimeField()
    seen_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "key"], name="notifications_one_observation")]

    def __str__(self) -> str:
        return f"{self.kind} {self.key}: {self.value} since {self.since:%Y-%m-%d %H:%M}"
