"""Writes of API keys and the service users that hold them."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from fdm.api.roles import Role, role_set
from fdm.apikeys.models import ApiKey

KEY_PREFIX = "fdm_"
PREFIX_LENGTH = 12  # "fdm_" and 8 random characters: enough to tell keys apart, far too little to guess one
# A key's last-used time is written at most this often, so that busy programs do not write on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def api_key_create(*, user: User, name: str, expires_at: datetime | None = None) -> tuple[ApiKey, str]:
    """Create a key for `user`; returns the record and the key itself, which is never available again."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey.objects.create(
        name=name, user=user, prefix=key[:PREFIX_LENGTH], digest=key_digest(key), expires_at=expires_at
    )
    return record, key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key (it stops working at once); revoking a revoked key changes nothing."""
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key.refresh_from_db()
    return api_key


def api_key_touch(*, api_key: ApiKey) -> None:
    """Record that the key was just used, unless that was already recorded within LAST_USED_RESOLUTION."""
    now = timezone.now()
    if api_key.last_used_at is not None and now - api_key.last_used_at < LAST_USED_RESOLUTION:
        return
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    api_key.last_used_at = now


def service_user_ensure(*, username: str, role: Role) -> User:
    """The service user `username` with exactly `role`, created without a password when missing.

    A user that already exists keeps its password and other groups; only its fdm role changes. Superusers
    stay superusers (they count as admin whatever their groups say).
    """
    with transaction.atomic():
        user, created = User.objects.get_or_create(username=username)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        role_set(user=user, role=role)
    return user


def service_key_create(
    *, username: str, role: Role, key_name: str | None = None, expires_at: datetime | None = None
) -> tuple[ApiKey, str]:
    """Create (or reuse) the service user `username` with `role`, and a new key for it."""
    with transaction.atomic():
        user = service_user_ensure(username=username, role=role)
        return api_key_create(user=user, name=key_name or username, expires_at=expires_at)
