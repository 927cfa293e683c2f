"""The engine's part of the table admin: each table's latest runs, its last run and last success in the list,
the "Sync now" action and the change page's sync buttons.

Configuration's admin (`syncconfig.admin`) knows nothing of runs; this module replaces its registration with a
subclass that adds them. Imported by SyncEngineConfig.ready(), after the admin has discovered every app's admin.
"""

from __future__ import annotations

from django.contrib import admin

from syncconfig.admin import TableConfigAdmin as ConfigurationAdmin
from syncconfig.models import TableConfig
from syncengine.admin import SyncRunInline, TableRunsAdminMixin, sync_now


# The mixin comes first: its change form template and queryset wrap configuration's.
class TableConfigAdmin(TableRunsAdminMixin, ConfigurationAdmin):  # type: ignore[misc]  # both type ModelAdmin's attributes
    inlines = [SyncRunInline]  # the table's latest runs
    actions = [*ConfigurationAdmin.actions, sync_now]
    list_display = (*ConfigurationAdmin.list_display, "last_run", "last_success")


def register(site: admin.AdminSite = admin.site) -> None:
    """Put the engine's table admin in place of configuration's (once, however often ready() runs)."""
    if site.is_registered(TableConfig):
        if isinstance(site.get_model_admin(TableConfig), TableConfigAdmin):
            return
        site.unregister(TableConfig)
    site.register(TableConfig, TableConfigAdmin)
