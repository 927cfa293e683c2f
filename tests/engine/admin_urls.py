"""An admin site with the table admin extended by `attach_to_table_admin`, as syncconfig wires it in."""

from django.contrib import admin
from django.urls import path

from syncconfig.admin import TableConfigAdmin
from syncconfig.models import TableConfig
from syncengine.admin import SyncRunAdmin, attach_to_table_admin
from syncengine.models import SyncRun

site = admin.AdminSite(name="admin")
# A subclass, so that extending it here leaves the project's own admin class as it is.
TableAdmin = attach_to_table_admin(
    type("TableAdmin", (TableConfigAdmin,), {"inlines": list(TableConfigAdmin.inlines)})
)
site.register(TableConfig, TableAdmin)
site.register(SyncRun, SyncRunAdmin)

urlpatterns = [path("admin/", site.urls)]
