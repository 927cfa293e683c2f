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


def browse_source_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    """The source browser: Snowflake's databases, then a database's schemas, a schema's tables, and a table's
    columns with the PostgreSQL type each gets, where ticking the key, incremental, encrypted, searchable,
    compressed and excluded columns fills in a new table's form (the add page takes them as its initial data)."""
    from syncengine.inspection import SourceNotFound, SourceUnavailable, source_browse

    if not model_admin.has_add_permission(request):
        raise PermissionDenied
    level = {name: request.GET.get(name, "").strip() for name in ("database", "schema", "table")}
    listing, problem = None, None
    try:
        listing = source_browse(**level)
    except (SourceNotFound, SourceUnavailable) as exc:
        problem = exc.message
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": "Browse the Snowflake source",
        "level": level,
        "listing": listing,
        "problem": problem,
        "suggested": _suggested_names(level),
    }
    return TemplateResponse(request, "admin/syncengine/browse_source.html", context)


def _suggested_names(level: dict[str, str]) -> dict[str, str]:
    """A new table's name and target from the source's: lower case, anything else made `_`."""
    table = "".join(c if c.isalnum() else "_" for c in level["table"].lower()).strip("_")
    if table and not table[0].isalpha():
        table = f"t_{table}"
    return {"name": table[:63], "postgres_schema": "public", "postgres_table": table[:63]}
