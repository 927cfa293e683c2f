"""Start-up checks: a process that would sync or read encrypted tables refuses to start without a usable
keyring (`manage.py check`, `runserver`, `qcluster` and other commands run them; the WSGI entry point too).
Commands that only handle configuration skip them (`fdm.commands.SkipsKeyringCheck`)."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register
from django.db import DatabaseError

from fdm.commands import KEYRING_CHECKS_TAG
from syncengine import connections
from syncengine.pipeline.protection.keyring import ENV_NAME, KeyringError


@register(KEYRING_CHECKS_TAG)
def check_keyring(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E001: the keyring is set but malformed. E002: tables need encryption and no keyring is set."""
    try:
        keyring = connections.keyring(required=False)
    except KeyringError as exc:
        return [Error(str(exc), hint="Generate a keyring with `manage.py generate_keyring`.", id="fdm.E001")]
    if keyring is not None:
        return []
    from syncconfig.choices import EncryptionMode
    from syncconfig.models import TableConfig

    try:
        names = list(
            TableConfig.objects.filter(enabled=True)
            .exclude(encryption_mode=EncryptionMode.OFF)
            .values_list("name", flat=True)[:6]
        )
    except DatabaseError:  # not migrated yet, or no database: nothing can need a key then
        return []
    if not names:
        return []
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return [
        Error(
            f"{ENV_NAME} is not set, but tables are configured with encryption ({shown})",
            hint=f"Set {ENV_NAME} (or {ENV_NAME}_FILE) to the keyring those tables were encrypted with, or a new "
            "one from `manage.py generate_keyring` before their first sync.",
            id="fdm.E002",
        )
    ]
