"""Bases of fdm's management commands.

`SkipsKeyringCheck`: commands that handle only configuration. Start-up checks that need the keyring are
registered under `KEYRING_CHECKS_TAG` by the app that owns them (`syncengine.checks`); these commands run every
check but those. `WithExitStatus`: commands whose exit status means something, said under their `--help`. `os_account`: who runs
a command, for the records that commands leave.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import ERROR
from django.core.checks.registry import registry
from django.core.management.base import BaseCommand, CommandParser

KEYRING_CHECKS_TAG = "fdm"


def os_account() -> str:
    """The OS account that runs this process, by its real user id: not $USER or $LOGNAME (what getpass reads
    first), which whoever runs the command sets as they like. `uid N` when the id has no passwd entry (an
    arbitrary container uid)."""
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


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
            tags = sorted(registry.tags_available() - {KEYRING_CHECKS_TAG})
        super().check(
            app_configs=app_configs,
            tags=tags,
            display_num_errors=display_num_errors,
            include_deployment_checks=include_deployment_checks,
            fail_level=fail_level,
            databases=databases,
        )


class WithExitStatus(BaseCommand):
    """A command whose `--help` ends with `epilog`: what each exit status means, for scripts that call it."""

    epilog = ""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.epilog = self.epilog
        return parser
