from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save


class SyncEngineConfig(AppConfig):
    name = "syncengine"
    verbose_name = "Sync engine"

    def ready(self) -> None:
        from syncengine import checks, signals  # noqa: F401 - checks registers itself

        # A lazy "app_label.Model" sender: the table model lives in syncconfig, which loads independently.
        post_save.connect(
            signals.table_saved, sender="syncconfig.TableConfig", dispatch_uid="fdm-table-saved"
        )
        post_delete.connect(
            signals.table_deleted, sender="syncconfig.TableConfig", dispatch_uid="fdm-table-deleted"
        )
        post_migrate.connect(signals.ensure_reaper_schedule, sender=self, dispatch_uid="fdm-reaper-schedule")
        from syncengine import alerts

        # A run's outcome opens or resolves its table's incident (fdm.notifications).
        post_save.connect(alerts.run_saved, sender="syncengine.SyncRun", dispatch_uid="fdm-run-alerts")

        from fdm.admin_site import admin_section_assign, dashboard_panel_register
        from fdm.api.roles import Role, role_permission_add
        from fdm.two_factor import second_factor_require
        from syncengine import dashboard, health, metrics, table_admin
        from syncengine.protected_data import READ_DECRYPTED

        role_permission_add(Role.ADMIN, READ_DECRYPTED)  # admins read decrypted data
        second_factor_require(READ_DECRYPTED)  # and log in to the admin with a second factor

        from syncconfig.source_checks import source_checker_register
        from syncengine.inspection import source_problems

        source_checker_register(source_problems)
        metrics.register()  # once per process, however often ready() runs
        health.register()
        table_admin.register()
        admin_section_assign("Runs", "syncengine.syncrun")
        admin_section_assign("Runs", "syncengine.reconciliation")
        admin_section_assign("Audit", "syncengine.decryptedread")
        dashboard_panel_register(dashboard.panel)
