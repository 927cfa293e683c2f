"""Reads of API keys and their audit trail."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from fdm.apikeys.models import ApiKey, ServiceAccount
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
    """Keys, newest first, with their users and creators; optionally only the active (or inactive) ones."""
    keys = ApiKey.objects.select_related("user", "created_by").order_by("-created_at", "-id")
    usable = Q(revoked_at__isnull=True) & (Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
    if active is True:
        keys = keys.filter(usable)
    elif active is False:
        keys = keys.exclude(usable)
    return keys


def api_key_audit_trail(*, api_key: ApiKey) -> list[Any]:
    """The key's history records (created, revoked, ...) and the role changes of the account holding it,
    newest first. Both are simple_history records; `instance_type` tells them apart."""
    key_records = list(ApiKey.history.filter(id=api_key.pk).select_related("history_user"))
    account_records = list(
        ServiceAccount.history.filter(user_id=api_key.user_id).select_related("history_user")
    )
    return sorted(
        key_records + account_records,
        key=lambda record: (record.history_date, record.history_id),
        reverse=True,
    )
