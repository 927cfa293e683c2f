"""Keep each table's Schedule in step with its configuration, whichever way it changes (admin, API, import).

Connected in `SyncEngineConfig.ready()`. The handlers run inside the saving transaction, so an import that
rolls back also rolls back the schedule changes it caused.
"""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS

from syncengine import schedules


def table_saved(sender: type, instance: Any, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    schedules.table_schedule_sync(table=instance, using=using)


def table_deleted(sender: type, instance: Any, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    schedules.table_schedule_delete(table_id=instance.pk, using=using)


def ensure_reaper_schedule(sender: Any, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """After `migrate`: the stale-run reaper, the maintenance jobs and the alert checks are scheduled on every installation without
    a manual step."""
    from django.db import connections
    from django_q.models import Schedule

    # `migrate syncengine` alone may run before django_q's tables exist; the next full migrate catches up.
    if Schedule._meta.db_table not in connections[using].introspection.table_names():
        return
    schedules.reaper_schedule_ensure(using=using)
    from syncengine.maintenance import maintenance_schedules_ensure

    maintenance_schedules_ensure(using=using)
    from syncengine.alerts import alerts_schedules_ensure

    alerts_schedules_ensure(using=using)
