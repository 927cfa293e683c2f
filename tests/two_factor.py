"""Two-factor codes for tests, computed with django-otp's own TOTP: as an authenticator app would show them."""

from __future__ import annotations

import time

from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from fdm.two_factor import totp_device_ensure


def device_for(user) -> TOTPDevice:
    return totp_device_ensure(user=user)[0]


def next_token(device: TOTPDevice) -> str:
    """A code the device accepts now: the current one, or, when that was used already (a device takes each
    time step's code once), the next step's, which the device's tolerance of one step still accepts."""
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    step = max(totp.t(), device.last_t + 1)
    totp.time = device.t0 + step * device.step
    return f"{totp.token():0{device.digits}d}"
