from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class FdmConfig(AppConfig):
    """The project package as an app: it holds the commands that run fdm on a workstation (`runserver`, `demo`,
    `benchmark`) and has no models."""

    default = True
    name = "fdm"
    verbose_name = "fdm"


class AdminConfig(admin_apps.AdminConfig):
    """Django's admin with fdm's site, whose login asks for a second factor (fdm.admin_site)."""

    default = False  # named in INSTALLED_APPS; `fdm` itself is FdmConfig
    default_site = "fdm.admin_site.AdminSite"
