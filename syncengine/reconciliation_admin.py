"""Reconciliations in the admin: their list and read-only pages, the tables' "Reconcile" action, and the table
page's "Reconcile" / "Deep reconcile" buttons (`<id>/reconcile/`, POST), which only enqueue.

Starting one takes the permission that starts a sync: whoever may reload a table may check it.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html_join

from syncengine import reconciliations
from syncengine.admin import START_SYNC_PERMISSION
from syncengine.choices import RunTrigger
from syncengine.models import Reconciliation
from syncengine.run_text import seconds_text


def _url(reconciliation: Reconciliation) -> str:
    return reverse("admin:syncengine_reconciliation_change", args=[reconciliation.pk])


@admin.action(description="Reconcile (deep)", permissions=["start_sync"])
def reconcile_now(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> HttpResponse | None:
    """Enqueue a deep reconciliation per selected table."""
    started = [
        reconciliations.reconciliation_enqueue(
            table=table, trigger=RunTrigger.ADMIN, deep=True, requested_by=request.user
        )
        for table in queryset
    ]
    modeladmin.message_user(
        request,
        f"{len(started)} reconciliations queued: " + ", ".join(f"{r.table_name} (#{r.pk})" for r in started),
        messages.SUCCESS,
    )
    if len(started) == 1:
        return HttpResponseRedirect(_url(started[0]))
    return HttpResponseRedirect(reverse("admin:syncengine_reconciliation_changelist"))


def reconcile_view(model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    """The table page's buttons (POST; `deep=1` for the deep check): enqueue, then show the reconciliation."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not request.user.has_perm(START_SYNC_PERMISSION):
        raise PermissionDenied
    table = model_admin.get_object(request, object_id)
    if table is None:
        raise Http404(f"no table with id {object_id}")
    deep = request.POST.get("deep") == "1"
    reconciliation = reconciliations.reconciliation_enqueue(
        table=table, trigger=RunTrigger.ADMIN, deep=deep, requested_by=request.user
    )
    model_admin.message_user(
        request, f"Reconciliation of {table.name} queued as #{reconciliation.pk}.", messages.SUCCESS
    )
    return HttpResponseRedirect(_url(reconciliation))


@admin.register(Reconciliation)
class ReconciliationAdmin(admin.ModelAdmin):
    """Reconciliations are results: read-only, like runs."""

    list_display = (
        "id",
        "table_name",
        "deep",
        "status",
        "trigger",
        "queued_at",
        "duration_display",
        "rows_compared",
        "differences_found",
    )
    list_filter = ("status", "deep", "trigger", "table_name")
    search_fields = ("table_name",)
    date_hierarchy = "queued_at"
    readonly_fields = (
        *(
            field.name
            for field in Reconciliation._meta.fields
            if field.name not in ("differences", "details")
        ),
        "differences_display",
        "details",
    )
    exclude = ("differences",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="duration")
    def duration_display(self, reconciliation: Reconciliation) -> str:
        duration = reconciliation.duration
        return seconds_text(duration.total_seconds()) if duration is not None else "-"

    @admin.display(description="differences")
    def differences_display(self, reconciliation: Reconciliation) -> str:
        if not reconciliation.differences:
            return "-"
        key = reconciliation.details.get("key") or []
        return format_html_join(
            "\n",
            "<div>{}: {} {}</div>",
            (
                (
                    ", ".join(
                        f"{name}={value}" for name, value in zip(key, each.get("key", []), strict=False)
                    )
                    or each.get("check", ""),
                    each.get("kind", "mismatch"),
                    ", ".join(each.get("columns", [])),
                )
                for each in reconciliation.differences[:200]
            ),
        )
