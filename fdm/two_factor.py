"""Who needs a second factor at the admin's login, and the TOTP devices that provide it (django-otp).

Anyone who holds a permission an app marked as sensitive (`second_factor_require`: the engine marks
`syncengine.read_decrypted`, which superusers hold too) must log in with a code from a TOTP device; anyone
else who enrolled a device uses it as well. API keys are not passwords and are unaffected
(fdm.api.authentication).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

DEVICE_NAME = "default"
# Permissions whose holders log in with a second factor; the apps that define them add them (from ready()).
SENSITIVE_PERMISSIONS: set[str] = set()


def second_factor_require(permission: str) -> None:
    """Make holders of the Django permission "app_label.codename" log in with a second factor."""
    SENSITIVE_PERMISSIONS.add(permission)


def needs_second_factor(user: Any) -> bool:
    return bool(user.is_active and any(user.has_perm(name) for name in SENSITIVE_PERMISSIONS))


def has_device(user: Any) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def second_factor_satisfied(user: Any) -> bool:
    """True when this login needs no code, or was made with one (OTPMiddleware sets `is_verified`)."""
    verified = getattr(user, "is_verified", None)
    if verified is not None and verified():
        return True
    return not (needs_second_factor(user) or has_device(user))


def matching_device(user: Any, token: str) -> TOTPDevice | None:
    """The user's confirmed device that accepts `token` (once: a code is not accepted twice)."""
    for device in TOTPDevice.objects.filter(user=user, confirmed=True):
        if device.verify_token(token):
            return device
    return None


@transaction.atomic
def totp_device_ensure(*, user: Any, reset: bool = False) -> tuple[TOTPDevice, bool]:
    """The user's TOTP device, created (confirmed) when there is none or `reset` replaces the old ones.
    Returns the device and whether it is new."""
    devices = TOTPDevice.objects.select_for_update().filter(user=user)
    if reset:
        devices.delete()
    else:
        existing = devices.filter(confirmed=True).order_by("id").first()
        if existing is not None:
            return existing, False
    return TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=True), True
