"""API keys: how programs authenticate to the REST API (`Authorization: Api-Key <key>`)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiKey(models.Model):
    """A secret that lets a program act as `user` through the REST API.

    The key itself is shown once, when it is created, and never stored: only its SHA-256 digest is kept, which
    is enough for a key of 256 random bits (no salt or slow hash is needed against guessing, unlike a
    password). `prefix`, the first characters of the key, is stored in clear text so that people can tell keys
    apart in listings and logs without seeing the secret. A revoked or expired key stops working at once but
    stays listed, so that who held which key remains on record. The key's role is its user's role
    (`fdm.api.roles`).
    """

    name = models.CharField(max_length=100, help_text="What the key is for, e.g. the program that uses it.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    prefix = models.CharField(max_length=16, help_text="The key's first characters, to recognise it.")
    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the key, hex.")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: the key does not expire.")
    revoked_at = models.DateTimeField(null=True, blank=True)

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
