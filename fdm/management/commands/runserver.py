"""`python manage.py runserver`: Django's development server (with static files), on local state prepared first.

Before serving, it keeps a secret key under FDM_STATE_DIR (unless SECRET_KEY is set) and, when DATABASE_URL is
unset, starts the embedded PostgreSQL (fdm.local_state). Options and output are Django's.
"""

from __future__ import annotations

from typing import Any

from django.contrib.staticfiles.management.commands.runserver import Command as StaticfilesRunserverCommand

from fdm.local_state import prepare_local_run


class Command(StaticfilesRunserverCommand):
    def handle(self, *args: Any, **options: Any) -> None:
        prepare_local_run()
        super().handle(*args, **options)
