"""Start-up checks: a process that would sync or read encrypted tables refuses to start without a usable
keyring (`manage.py check`, `runserver`, `qcluster` and other commands run them; the WSGI entry point too)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import ERROR, CheckMessage, Error, register
from django.core.checks.registry import registry
from django.core.management.base import BaseCommand
from django.db import DatabaseError

from syncengine import connections
from syncengine.pipeline.protection.keyring import ENV_NAME, KeyringError

TAG = "fdm"


@register(TAG)
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


class SkipsKeyringCheck(BaseCommand):
    """Base of commands that only handle configuration (import or export tables, generate keys, create API
    keys): they run every start-up check but the keyring's, so that an operator can set tables up before the
    keyring exists."""

    def check(
        self,
        app_configs: Sequence[AppConfig] | None = None,
        tags: Sequence[str] | None = None,
        display_num_errors: bool = False,
        include_deployment_checks: bool = False,
        fail_level: int = ERROR,
        databases: Sequence[str] | None = None,
    ) -> None:
        if tags is None:
            tags = sorted(registry.tags_available() - {TAG})
        super().check(
            app_configs=app_configs,
            tags=tags,
            display_num_errors=display_num_errors,
            include_deployment_checks=include_deployment_checks,
            fail_level=fail_level,
            databases=databases,
        )
