"""`python manage.py create_api_key NAME --role viewer|operator|admin`"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from fdm.api.roles import ROLE_NAMES, Role
from fdm.apikeys.services import Actor, NotAServiceAccount, service_key_create
from fdm.commands import SkipsKeyringCheck


class Command(SkipsKeyringCheck):
    help = (
        "Create (or reuse) the service account NAME with the given role and print a new API key for it. The "
        "key is the last line of the output (scripts read it from there) and cannot be shown again; programs "
        "send it as `Authorization: Api-Key <key>`. An existing user that is not a service account (a person, "
        "a superuser, a staff user) is refused. The key and any role change are recorded as made by the OS "
        "user running the command."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", metavar="NAME", help="the service account's name, also the key's name")
        parser.add_argument("--role", required=True, choices=ROLE_NAMES, help="the account's role")
        parser.add_argument(
            "--expires-in-days",
            type=int,
            metavar="DAYS",
            help="the key stops working after this many days (default: never)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name: str = options["name"].strip()
        if not name or len(name) > 150:
            raise CommandError("NAME must be 1 to 150 characters long")
        days = options["expires_in_days"]
        if days is not None and days <= 0:
            raise CommandError("--expires-in-days must be a positive number")
        expires_at = timezone.now() + timedelta(days=days) if days else None
        role = Role.parse(options["role"])
        try:
            record, key = service_key_create(
                username=name, role=role, expires_at=expires_at, actor=Actor.from_shell()
            )
        except NotAServiceAccount as error:
            raise CommandError(str(error)) from None
        expiry = f", expires {record.expires_at:%Y-%m-%d %H:%M %Z}" if record.expires_at else ""
        self.stdout.write(
            f"Created API key {record.prefix}… (id {record.pk}) for user {name!r} with role {role.label}"
            f"{expiry}. It is shown once, below."
        )
        self.stdout.write(key)
