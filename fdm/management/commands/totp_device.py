"""`python manage.py totp_device USERNAME`: enrol a TOTP device for the admin's two-factor login.

Prints the device's otpauth:// URI (and its QR code) for an authenticator app. Run again, it shows the same
device; `--reset` replaces it (a lost phone), after which the old app's codes no longer work.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import segno
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from fdm.two_factor import needs_second_factor, totp_device_ensure


class Command(BaseCommand):
    help = "Enrol (or show) USERNAME's TOTP device for the admin's two-factor login and print its otpauth:// URI."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--reset", action="store_true", help="replace the user's device with a new one")
        parser.add_argument("--no-qr", action="store_true", help="print the URI and secret without a QR code")

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        try:
            user = user_model.objects.get(**{user_model.USERNAME_FIELD: options["username"]})
        except user_model.DoesNotExist:
            raise CommandError(f"no user named {options['username']!r}") from None
        device, created = totp_device_ensure(user=user, reset=options["reset"])
        self.stdout.write(enrolment_text(device, created=created, qr=not options["no_qr"]))
        if not needs_second_factor(user):
            self.stdout.write("This user may read no decrypted data; the code is asked for all the same.")


def enrolment_text(device: Any, *, created: bool, qr: bool = True) -> str:
    """What an operator needs to add `device` to an authenticator app: QR code, URI and secret."""
    username = device.user.get_username()
    lines = [
        f"{'New' if created else 'Existing'} two-factor device for {username}: add it to an authenticator app."
    ]
    if qr:
        text = io.StringIO()
        segno.make(device.config_url, error="m").terminal(out=text, compact=True)
        lines.append(text.getvalue().rstrip("\n"))
    lines.append(f"URI:    {device.config_url}")
    lines.append(f"Secret: {base64.b32encode(device.bin_key).decode()}")
    return "\n".join(lines) + "\n"
