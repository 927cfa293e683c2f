from django.apps import AppConfig


class SyncConfigConfig(AppConfig):
    name = "syncconfig"
    verbose_name = "Table configuration"

    def ready(self) -> None:
        from fdm.admin_site import admin_section_assign
        from fdm.api.errors import register_error
        from fdm.api.roles import Role, role_permission_add
        from syncconfig.api.errors import protection_denied, table_rejected
        from syncconfig.protection import PERMISSION
        from syncconfig.services import ProtectionDenied, TableRejected

        # The API answers them with 400 (403 for protection) and the key paths.
        register_error(ProtectionDenied, protection_denied)
        register_error(TableRejected, table_rejected)
        role_permission_add(Role.ADMIN, PERMISSION)  # only admins weaken the protection of sensitive columns
        admin_section_assign("Configuration", "syncconfig")
