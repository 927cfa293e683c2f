#!/usr/bin/env python
"""Django's command-line utility for fdm."""

import os
import sys

# Django's development server speaks plain http only, on a workstation; so do the demo's. Everything else
# (gunicorn, workers, commands) keeps the production posture unless FDM_HTTPS=false is set.
PLAIN_HTTP_COMMANDS = {"runserver", "demo"}


def run_command_line(argv: list[str]) -> None:
    """Run a management command. When fdm runs on the embedded PostgreSQL (DATABASE_URL unset) and a command
    needs it while it is stopped, say in one line how to start it instead of showing a traceback: importing the
    settings never starts it (fdm.local_state). A setting that is missing or malformed is one line, too."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fdm.settings")
    if len(argv) > 1 and argv[1] in PLAIN_HTTP_COMMANDS:
        os.environ.setdefault("FDM_HTTPS", "false")
    import psycopg
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line
    from django.db import OperationalError

    from fdm.env import ConfigurationError

    try:
        settings.SECRET_KEY  # noqa: B018 - loads the settings
    except (ImproperlyConfigured, ConfigurationError) as exc:
        sys.stderr.write(f"fdm: {exc}\n")
        sys.exit(1)
    try:
        execute_from_command_line(argv)
    except (OperationalError, psycopg.OperationalError):
        from fdm.local_state import embedded_database_hint, embedded_database_stopped

        if not embedded_database_stopped():
            raise
        sys.stderr.write(embedded_database_hint() + "\n")
        sys.exit(1)


def main() -> None:
    run_command_line(sys.argv)


if __name__ == "__main__":
    main()
