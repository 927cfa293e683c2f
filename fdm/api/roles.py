"""Roles of API users: viewer < operator < admin, each including the ones before it.

A role is membership of the Django group of the same name (created by the `apikeys` app's migrations);
superusers count as admin. Anything that needs to know what a user may do asks `role_of` or `has_role`, so
that a new module (an endpoint, an admin action) shares the same notion of role:

- viewer: read table configuration, runs, metadata and health details;
- operator: also create, edit and delete tables, import YAML, start and cancel runs;
- admin: also manage API keys and users, purge run history, and read decrypted data.
"""

from __future__ import annotations

import enum
from typing import Any

from django.contrib.auth.models import AnonymousUser, Group, Permission, User
from django.db import transaction


class Role(enum.IntEnum):
    """A role; a higher value includes every lower one."""

    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def group_name(self) -> str:
        return self.name.lower()

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str) -> Role:
        """The role named `value` (viewer, operator, admin). Raises ValueError."""
        try:
            return cls[value.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown role {value!r}; expected one of: {', '.join(ROLE_NAMES)}") from None


ROLE_NAMES = tuple(role.label for role in Role)
# Django permissions a role's group holds, for code that asks `user.has_perm` rather than the role. The apps
# that define the permissions add them (`role_permission_add`, from their AppConfig.ready).
ROLE_PERMISSIONS: dict[Role, tuple[str, ...]] = {}
_CACHE_ATTRIBUTE = "_fdm_role"


def role_permission_add(role: Role, permission: str) -> None:
    """Let `role`'s group hold the Django permission "app_label.codename" whenever a user is given the role."""
    if permission not in ROLE_PERMISSIONS.get(role, ()):
        ROLE_PERMISSIONS[role] = (*ROLE_PERMISSIONS.get(role, ()), permission)


def role_of(user: User | AnonymousUser | Any) -> Role | None:
    """The user's highest role, or None (anonymous, inactive, or in no role group).

    Cached on the user object, so that several permission checks in one request cost one query.
    """
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return None
    if getattr(user, "is_superuser", False):
        return Role.ADMIN
    if hasattr(user, _CACHE_ATTRIBUTE):
        return getattr(user, _CACHE_ATTRIBUTE)
    names = set(user.groups.filter(name__in=ROLE_NAMES).values_list("name", flat=True))
    roles = [role for role in Role if role.group_name in names]
    role = max(roles) if roles else None
    setattr(user, _CACHE_ATTRIBUTE, role)
    return role


def has_role(user: User | AnonymousUser | Any, role: Role) -> bool:
    """Whether the user has `role` or a higher one."""
    actual = role_of(user)
    return actual is not None and actual >= role


def role_set(*, user: User, role: Role | None) -> None:
    """Give the user exactly `role` (or no role): the other role groups are left, other groups untouched."""
    with transaction.atomic():
        groups = {group.name: group for group in Group.objects.filter(name__in=ROLE_NAMES)}
        missing = [name for name in ROLE_NAMES if name not in groups]
        for name in missing:  # the migration creates them; a database restored without them still works
            groups[name] = Group.objects.get_or_create(name=name)[0]
        user.groups.remove(*[groups[name] for name in ROLE_NAMES if role is None or name != role.group_name])
        if role is not None:
            group = groups[role.group_name]
            _grant_role_permissions(group, role)
            user.groups.add(group)
    if hasattr(user, _CACHE_ATTRIBUTE):
        delattr(user, _CACHE_ATTRIBUTE)


def _grant_role_permissions(group: Group, role: Role) -> None:
    """Make sure the role's group holds its permissions (the migration grants them; a flushed or restored
    database may have lost them)."""
    for name in ROLE_PERMISSIONS.get(role, ()):
        app_label, codename = name.split(".")
        permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
        if permission is not None:
            group.permissions.add(permission)
