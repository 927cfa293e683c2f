"""`python manage.py generate_keyring [--rotate] [--key-id ID]`: print a new keyring as the last line."""

from __future__ import annotations

import argparse

from django.core.management.base import CommandError

from fdm.commands import SkipsKeyringCheck
from syncengine import connections
from syncengine.pipeline.protection.keyring import ENV_NAME, Keyring, KeyringError


class Command(SkipsKeyringCheck):
    help = (
        f"Print a new encryption keyring, as the last line of the output, in the form {ENV_NAME} takes. "
        "With --rotate, the new key goes in front of the keyring currently in the environment: deploy the "
        "printed keyring to every process, then run `manage.py rotate_keys`. Keys are printed, never stored."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--rotate",
            action="store_true",
            help=f"keep the keys of the current {ENV_NAME} (or {ENV_NAME}_FILE) after the new primary key",
        )
        parser.add_argument(
            "--key-id", help="the new key's id (default: today's date and 4 random hex digits)"
        )

    def handle(self, *args, **options) -> None:
        try:
            if options["rotate"]:
                current = connections.keyring(required=False)
                if current is None:
                    raise CommandError(f"--rotate needs the current keyring in {ENV_NAME} or {ENV_NAME}_FILE")
                keyring = current.with_new_primary(options["key_id"])
            else:
                keyring = Keyring.generate(options["key_id"])
        except KeyringError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"# New primary key id: {keyring.primary}. Keys: {', '.join(keyring.ids)} (first = primary).\n"
            f"# Keep it secret: put it in {ENV_NAME} (or a file named by {ENV_NAME}_FILE) of every fdm process."
        )
        self.stdout.write(keyring.format())
