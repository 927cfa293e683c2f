from django.apps import AppConfig


class FdmConfig(AppConfig):
    """The project package as an app: it holds the commands that run fdm on a workstation (`runserver`, `demo`,
    `benchmark`) and has no models."""

    name = "fdm"
    verbose_name = "fdm"
