from django.apps import AppConfig


class ApiKeysConfig(AppConfig):
    name = "fdm.apikeys"
    label = "apikeys"
    verbose_name = "API keys"
