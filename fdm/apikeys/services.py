"""Writes of API keys and the service accounts that hold them.

The rule that keys are issued only to service accounts lives here, so that the API, the admin and the
`create_api_key` command cannot differ on it. Every creation and revocation of a key and every role change of
a service account is recorded in the models' history with who made it and through which channel.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from fdm.api.roles import Role, role_of, role_set
from fdm.apikeys.models import ApiKey, Channel, ServiceAccount
from fdm.commands import os_account

KEY_PREFIX = "fdm_"
PREFIX_LENGTH = 12  # "fdm_" and 8 random characters: enough to tell keys apart, far too little to guess one
# A key's last-used time is written at most this often, so that busy programs do not write on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Actor:
    """Who makes a change, and through which channel: an account (API, admin) or a named OS user (command)."""

    channel: Channel
    user: User | None = None
    name: str = ""

    @classmethod
    def of_user(cls, user: Any, channel: Channel) -> Actor:
        account = user if isinstance(user, User) and user.pk is not None else None
        return cls(channel=channel, user=account, name=account.get_username() if account else "")

    @classmethod
    def from_shell(cls) -> Actor:
        """The OS user running a management command: the server has no account for them."""
        return cls(channel=Channel.COMMAND, name=os_account())


UNRECORDED = Actor(channel=Channel.CODE)


class NotAServiceAccount(Exception):
    """A key or a role change was asked for a user that is not a service account."""

    def __init__(self, user: User, why: str):
        self.user = user
        self.why = why
        super().__init__(
            f"user {user.get_username()!r} {why}; API keys are issued only to service accounts "
            "(use another name to create a new service account)"
        )


def service_account_problem(user: User) -> str | None:
    """Why `user` may not hold keys or have its role set through keys, or None when it may."""
    if user.is_superuser:
        return "is a superuser"
    if user.is_staff:
        return "is a staff user"
    if user.has_usable_password():
        return "has a password, so it is a person's account"
    if not ServiceAccount.objects.filter(user=user).exists():
        return "is not a service account"
    return None


def service_account_require(user: User) -> ServiceAccount:
    """The user's service account; raises NotAServiceAccount for anyone else."""
    problem = service_account_problem(user)
    if problem is not None:
        raise NotAServiceAccount(user, problem)
    return ServiceAccount.objects.get(user=user)


def _mark(instance: ServiceAccount | ApiKey, actor: Actor) -> None:
    """Tell simple_history who makes this change and through which channel."""
    instance._change_reason = actor.channel.value
    instance._history_actor = actor.name
    if actor.user is not None:
        instance._history_user = actor.user


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def api_key_create(
    *, user: User, name: str, expires_at: datetime | None = None, actor: Actor = UNRECORDED
) -> tuple[ApiKey, str]:
    """Create a key for the service account `user`; returns the record and the key itself, which is never
    available again. Raises NotAServiceAccount for any other user."""
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()  # no concurrent promotion to superuser
        user.refresh_from_db()
        service_account_require(user)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        record = ApiKey(
            name=name,
            user=user,
            prefix=key[:PREFIX_LENGTH],
            digest=key_digest(key),
            expires_at=expires_at,
            created_by=actor.user,
            created_by_name=actor.name,
        )
        _mark(record, actor)
        record.save()
    return record, key


def api_key_revoke(*, api_key: ApiKey, actor: Actor = UNRECORDED) -> ApiKey:
    """Revoke a key (it stops working at once); revoking a revoked key changes nothing and records nothing."""
    with transaction.atomic():
        record = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if record.revoked_at is None:
            record.revoked_at = timezone.now()
            _mark(record, actor)
            record.save(update_fields=["revoked_at"])
    api_key.refresh_from_db()
    return api_key


def api_key_touch(*, api_key: ApiKey) -> None:
    """Record that the key was just used, unless that was already recorded within LAST_USED_RESOLUTION."""
    now = timezone.now()
    if api_key.last_used_at is not None and now - api_key.last_used_at < LAST_USED_RESOLUTION:
        return
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)  # update(): no history record per use
    api_key.last_used_at = now


def service_account_role_set(*, user: User, role: Role | None, actor: Actor = UNRECORDED) -> ServiceAccount:
    """Give the service account `user` exactly `role` (or none), recorded in its history when it changes.

    Raises NotAServiceAccount for any other user.
    """
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()
        user.refresh_from_db()
        account = service_account_require(user)
        role_set(user=user, role=role)
        label = role.label if role is not None else ""
        if account.role != label:
            account.role = label
            _mark(account, actor)
            account.save(update_fields=["role"])
    return account


def user_role_set(*, user: User, role: Role | None, actor: Actor) -> None:
    """Give `user` exactly `role`, on record with who made the change and through which channel.

    A service account's change goes into its history (`service_account_role_set`, NotAServiceAccount when it
    has become a person's account); a person's into the admin's log of that user, the trail that an edit of
    their groups on the admin's user page leaves too (shown on that user's History page).
    """
    if ServiceAccount.objects.filter(user=user).exists():
        service_account_role_set(user=user, role=role, actor=actor)
        return
    with transaction.atomic():
        before = role_of(User.objects.get(pk=user.pk))
        role_set(user=user, role=role)
        if before != role and actor.user is not None:
            LogEntry.objects.log_actions(
                user_id=actor.user.pk,
                queryset=[user],
                action_flag=CHANGE,
                change_message=f"Changed role from {_role_label(before)} to {_role_label(role)} "
                f"(via {actor.channel.value}).",
                single_object=True,
            )


def _role_label(role: Role | None) -> str:
    return role.label if role is not None else "none"


def service_user_ensure(*, username: str, role: Role, actor: Actor = UNRECORDED) -> User:
    """The service account `username` with exactly `role`, created without a password when missing.

    1. A new user becomes a service account, created by `actor`.
    2. An existing user must already be a service account (NotAServiceAccount otherwise, changing nothing):
       a person's account, a superuser or a staff user is never given a key or a new role here.
    3. The role is set; a change is recorded in the account's history. Other groups are left as they are.
    """
    with transaction.atomic():
        user, created = User.objects.get_or_create(username=username)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
            account = ServiceAccount(
                user=user, role=role.label, created_by=actor.user, created_by_name=actor.name
            )
            _mark(account, actor)
            account.save()
        service_account_role_set(user=user, role=role, actor=actor)
    return user


def service_key_create(
    *,
    username: str,
    role: Role,
    key_name: str | None = None,
    expires_at: datetime | None = None,
    actor: Actor = UNRECORDED,
) -> tuple[ApiKey, str]:
    """Create (or reuse) the service account `username` with `role`, and a new key for it."""
    with transaction.atomic():
        user = service_user_ensure(username=username, role=role, actor=actor)
        return api_key_create(user=user, name=key_name or username, expires_at=expires_at, actor=actor)
