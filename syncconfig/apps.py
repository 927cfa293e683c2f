from django.apps import AppConfig


class SyncConfigConfig(AppConfig):
    name = "syncconfig"
    verbose_name = "Table configuration"

    def ready(self) -> None:
        from fdm.api.errors import register_error
        from syncconfig.api.errors import table_rejected
        from syncconfig.services import TableRejected

        register_error(TableRejected, table_rejected)  # the API answers it with 400 and the key paths
