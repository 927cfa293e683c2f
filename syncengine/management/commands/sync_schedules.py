"""`python manage.py sync_schedules`: repair the task queue's schedules from the table configuration."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from syncengine.schedules import schedules_sync_all


class Command(BaseCommand):
    help = (
        "Give every enabled, scheduled table exactly one task-queue schedule matching its configuration, "
        "remove schedules of disabled, manual or deleted tables, and make sure the stale-run reaper is "
        "scheduled. Saves through the admin, the API and the YAML import do this already; run it after "
        "changes that bypass them (bulk SQL, a restored backup)."
    )

    def handle(self, *args, **options) -> None:
        report = schedules_sync_all()
        self.stdout.write(
            f"schedules: {report.created} created, {report.updated} updated, {report.deleted} deleted, "
            f"{report.unchanged} unchanged"
        )
