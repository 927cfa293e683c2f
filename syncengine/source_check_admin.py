"""The table page's "Check against source": the table's configuration checked against its Snowflake source
(`inspection.table_check_source`), shown as findings and the source's columns with what a run makes of each."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse


def check_source_view(model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    from syncengine.inspection import SourceUnavailable, table_check_source

    table = model_admin.get_object(request, object_id)
    if table is None:
        raise Http404(f"no table with id {object_id}")
    if not model_admin.has_change_permission(request, table):
        raise PermissionDenied
    check, unavailable = None, None
    try:
        check = table_check_source(table=table)
    except SourceUnavailable as exc:
        unavailable = exc.message
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "original": table,
        "title": f"{table.name} against its source",
        "check": check,
        "unavailable": unavailable,
    }
    return TemplateResponse(request, "admin/syncengine/table_check_source.html", context)
