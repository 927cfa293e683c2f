from django.apps import AppConfig


class SyncConfigConfig(AppConfig):
    name = "syncconfig"
    verbose_name = "Table configuration"
