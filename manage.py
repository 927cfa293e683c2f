#!/usr/bin/env python
"""Django's command-line utility for fdm."""

import os
import sys


def run_command_line(argv: list[str]) -> None:
    """Run a management command. When fdm runs on the embedded PostgreSQL (DATABASE_URL unset) and a command
    needs it while it is stopped, say in one line how to start it instead of showing a traceback: importing the
    settings never starts it (fdm.local_state)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fdm.settings")
    import psycopg
    from django.core.management import execute_from_command_line
    from django.db import OperationalError

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
