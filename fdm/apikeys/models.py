"""API keys: how programs authenticate to the REST API (`Authorization: Api-Key <key>`), and the service
accounts that hold them."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.dispatch import receiver
from django.utils import timezone
from simple_history.models import HistoricalRecords
from simple_history.signals import pre_create_historical_record

ACTOR_NAME_LENGTH = 150


class Channel(models.TextChoices):
    """Where an audited change was made."""

    API = "api"
    ADMIN = "admin"
    COMMAND = "command"
    MIGRATION = "migration"
    CODE = "code"  # a direct call of a service, e.g. from a test or a shell session


class AuditFields(models.Model):
    """Added to every history record of this app: who acted, by name. `history_user` links the account when
    there is one; the name stays when the account is deleted, and names the OS user for a command run on the
    server's shell, where there is no account."""

    history_actor = models.CharField(max_length=ACTOR_NAME_LENGTH, blank=True, default="")

    class Meta:
        abstract = True


class ServiceAccount(models.Model):
    """Marks `user` as a program's account: the only kind of user that API keys are issued to.

    Service accounts are created by `service_user_ensure` (the API, the admin and `create_api_key`), have no
    usable password and are neither superusers nor staff; a person's account is never turned into one. `role`
    mirrors the role group the account was last given through fdm, so that its history records every role
    change with who made it and through which channel; the groups themselves stay the source of truth for
    permissions (`fdm.api.roles`).
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="service_account"
    )
    role = models.CharField(max_length=16, blank=True, help_text="viewer, operator or admin; empty: none.")
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty for accounts created by the command on the server or by a migration.",
    )
    created_by_name = models.CharField(
        max_length=ACTOR_NAME_LENGTH, blank=True, help_text="Who created it: a username, or the OS user."
    )

    history = HistoricalRecords(bases=[AuditFields])
    # Set before a save; recorded with the change simple_history writes.
    _change_reason: str
    _history_user: Any
    _history_actor: str

    class Meta:
        ordering = ["user__username"]
        verbose_name = "service account"

    def __str__(self) -> str:
        return self.user.get_username()


class ApiKey(models.Model):
    """A secret that lets a program act as `user` through the REST API.

    The key itself is shown once, when it is created, and never stored: only its SHA-256 digest is kept, which
    is enough for a key of 256 random bits (no salt or slow hash is needed against guessing, unlike a
    password). `prefix`, the first characters of the key, is stored in clear text so that people can tell keys
    apart in listings and logs without seeing the secret. A revoked or expired key stops working at once but
    stays listed, so that who held which key remains on record. The key's role is its user's role
    (`fdm.api.roles`). New keys are issued to service accounts only.
    """

    name = models.CharField(max_length=100, help_text="What the key is for, e.g. the program that uses it.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    prefix = models.CharField(max_length=16, help_text="The key's first characters, to recognise it.")
    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the key, hex.")
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty for keys created by the command on the server (see created by name).",
    )
    created_by_name = models.CharField(
        max_length=ACTOR_NAME_LENGTH,
        blank=True,
        help_text="Who created the key: a username, or the OS user who ran the command. Empty for keys made "
        "before this was recorded.",
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: the key does not expire.")
    revoked_at = models.DateTimeField(null=True, blank=True)

    # The digest is no one's business in an audit trail; last use is written with update(), never audited.
    history = HistoricalRecords(bases=[AuditFields], excluded_fields=["digest", "last_used_at"])
    _change_reason: str
    _history_user: Any
    _history_actor: str

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()


@receiver(pre_create_historical_record)
def _record_actor_name(sender: Any, instance: Any, history_instance: Any, **kwargs: Any) -> None:
    """Fill `history_actor` of this app's history records: the name the service set, else the account's."""
    if not isinstance(instance, ServiceAccount | ApiKey):
        return
    name = getattr(instance, "_history_actor", "")
    if not name and history_instance.history_user_id is not None:
        user = kwargs.get("history_user")
        name = user.get_username() if user is not None else ""
    history_instance.history_actor = name[:ACTOR_NAME_LENGTH]
