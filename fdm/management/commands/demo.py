"""`python manage.py demo`: the whole product on embedded defaults, in one command (syncengine.dev.demo)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    # The start-up checks need the keyring, which this command provides before it starts anything.
    requires_system_checks: list[str] = []
    help = (
        "Run fdm end to end on embedded defaults: start the Snowflake emulator with sample financial data, "
        "sync it into PostgreSQL through the worker queue, and serve the admin."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--rows", type=int, default=300_000, help="transactions to generate (default 300000)"
        )
        parser.add_argument("--port", type=int, default=8000, help="admin web server port (default 8000)")
        parser.add_argument(
            "--snowflake-port", type=int, default=0, help="emulator port (default: a free one)"
        )
        parser.add_argument(
            "--no-serve", action="store_true", help="stop after the syncs instead of serving the admin"
        )
        parser.add_argument(
            "--timeout", type=int, default=600, help="seconds to wait for the syncs (default 600)"
        )
        parser.add_argument(
            "--reset",
            action="store_true",
            help="import config/demo/tables.yaml again, undoing changes made to the demo's tables (by default "
            "it is imported on the first start only, so that edits made in the admin stay)",
        )

    def handle(self, *args, **options):
        from django.conf import settings

        from fdm.local_state import embedded_database_stopped, prepare_local_run
        from syncengine.dev.demo import DemoOptions, run_demo
        from syncengine.dev.emulator import EmulatorError

        # The demo stops, when it ends, the embedded PostgreSQL it started; one that ran before it keeps running
        # (a `runserver` or another command may be using it).
        starts_database = settings.EMBEDDED_DATABASE and embedded_database_stopped()
        prepare_local_run()
        self._enrol_admin_device()
        try:
            run_demo(
                DemoOptions(
                    rows=options["rows"],
                    port=options["port"],
                    snowflake_port=options["snowflake_port"],
                    serve=not options["no_serve"],
                    timeout=options["timeout"],
                    reset=options["reset"],
                    stop_database=starts_database,
                ),
                stdout=self.stdout,
            )
        except EmulatorError as exc:
            raise CommandError(str(exc)) from exc

    def _enrol_admin_device(self) -> None:
        """The demo's `admin` is a superuser, so its login asks for a two-factor code like any other (no
        switch turns that off): enrol its device, kept across demo starts, and print it before anything else."""
        from django.contrib.auth import get_user_model
        from django.core.management import call_command

        from fdm.management.commands.totp_device import enrolment_text
        from fdm.two_factor import totp_device_ensure

        call_command("migrate", interactive=False, verbosity=0)
        admin, _ = get_user_model().objects.get_or_create(
            username="admin", defaults={"email": "admin@example.com", "is_staff": True, "is_superuser": True}
        )
        device, created = totp_device_ensure(user=admin)
        self.stdout.write(enrolment_text(device, created=created))
        self.stdout.write("The admin's login page asks for the six-digit code that app shows.\n")
