"""Permission classes by role (see `fdm.api.roles`). Every API view names its classes explicitly."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from fdm.api.roles import Role, has_role


class _HasRole(BasePermission):
    role: Role
    message = "This needs a different role."

    def has_permission(self, request: Request, view: Any) -> bool:
        return has_role(request.user, self.role)


class IsViewer(_HasRole):
    """Viewers, operators and admins."""

    role = Role.VIEWER
    message = "This needs the viewer role or higher."


class IsOperator(_HasRole):
    """Operators and admins."""

    role = Role.OPERATOR
    message = "This needs the operator role or higher."


class IsAdmin(_HasRole):
    """Admins (and superusers)."""

    role = Role.ADMIN
    message = "This needs the admin role."


class ViewerReadsOperatorWrites(BasePermission):
    """Reads (GET, HEAD, OPTIONS) for viewers; writes for operators."""

    message = "Changes need the operator role or higher."

    def has_permission(self, request: Request, view: Any) -> bool:
        needed = Role.VIEWER if request.method in SAFE_METHODS else Role.OPERATOR
        return has_role(request.user, needed)


def role_or_permission(role: Role, permission: str) -> type[BasePermission]:
    """A permission class that admits users with `role` (or higher) and users granted the Django permission
    `permission` ("app_label.codename"), e.g. `role_or_permission(Role.ADMIN, "syncengine.read_decrypted")`."""

    class RoleOrPermission(BasePermission):
        message = f"This needs the {role.label} role or the {permission} permission."

        def has_permission(self, request: Request, view: Any) -> bool:
            user = request.user
            if has_role(user, role):
                return True
            return bool(user and user.is_authenticated and user.is_active and user.has_perm(permission))

    RoleOrPermission.__name__ = f"{role.name.title()}Or{permission.split('.')[-1].title().replace('_', '')}"
    return RoleOrPermission
