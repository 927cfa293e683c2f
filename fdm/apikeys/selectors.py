"""Reads of API keys."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.utils import timezone

from fdm.apikeys.models import ApiKey
from fdm.apikeys.services import KEY_PREFIX, key_digest


def api_key_for_secret(*, key: str) -> ApiKey | None:
    """The active key with this secret, with its user; None for an unknown, revoked or expired key."""
    if not key.startswith(KEY_PREFIX):
        return None
    return (
        ApiKey.objects.select_related("user")
        .filter(digest=key_digest(key), revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
        .first()
    )


def api_key_list(*, active: bool | None = None) -> QuerySet[ApiKey]:
    """Keys, newest first, with their users; optionally only the active (or inactive) ones."""
    keys = ApiKey.objects.select_related("user").order_by("-created_at", "-id")
    usable = Q(revoked_at__isnull=True) & (Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
    if active is True:
        keys = keys.filter(usable)
    elif active is False:
        keys = keys.exclude(usable)
    return keys
