"""The admin's pages about the Snowflake source: "Check against source" (a table's configuration checked against
its source by `inspection.table_check_source`, shown as findings and the source's columns with what a run makes
of each), for a saved table or for the choices made in the source browser before anything is saved; and the
source browser itself."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from syncconfig.choices import CompressionMode, EncryptionMode, SyncMode
from syncconfig.forms import LIST_FIELDS
from syncconfig.models import TableConfig


def check_source_view(model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str) -> HttpResponse:

    table = model_admin.get_object(request, object_id)
    if table is None:
        raise Http404(f"no table with id {object_id}")
    if not model_admin.has_change_permission(request, table):
        raise PermissionDenied
    return _check_page(model_admin, request, table, add_url="")


def check_choices_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    """The source browser's "Check these choices": the table its form describes, checked unsaved, with the way
    on to the add page (the same choices) or back to the browser."""
    if not model_admin.has_add_permission(request):
        raise PermissionDenied
    table = _table_from_choices(request)
    add_url = reverse(f"admin:{model_admin.opts.app_label}_{model_admin.opts.model_name}_add")
    return _check_page(model_admin, request, table, add_url=f"{add_url}?{request.GET.urlencode()}")


def _check_page(
    model_admin: admin.ModelAdmin, request: HttpRequest, table: Any, *, add_url: str
) -> HttpResponse:
    from syncengine.inspection import SourceUnavailable, table_check_source

    check, unavailable = None, None
    try:
        check = table_check_source(table=table)
    except SourceUnavailable as exc:
        unavailable = exc.message
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "original": table,
        "title": f"{table.name or table.snowflake_table} against its source",
        "check": check,
        "unavailable": unavailable,
        "add_url": add_url,
        "browse_url": f"{reverse('admin:syncconfig_tableconfig_browse_source')}?"
        + urlencode(
            {
                "database": table.snowflake_database,
                "schema": table.snowflake_schema,
                "table": table.snowflake_table,
            }
        ),
    }
    return TemplateResponse(request, "admin/syncengine/table_check_source.html", context)


def _table_from_choices(request: HttpRequest) -> TableConfig:
    """An unsaved table from the source browser's form: names, target, key, incremental column and the
    columns to encrypt, search, compress or leave out (modes follow from the lists given)."""
    query = request.GET
    lists = {field: [name for name in query.getlist(field) if name] for field in LIST_FIELDS}
    incremental = query.get("incremental_column", "")
    return TableConfig(
        name=query.get("name", ""),
        snowflake_database=query.get("snowflake_database", ""),
        snowflake_schema=query.get("snowflake_schema", ""),
        snowflake_table=query.get("snowflake_table", ""),
        postgres_schema=query.get("postgres_schema", "public"),
        postgres_table=query.get("postgres_table", ""),
        sync_mode=SyncMode.INCREMENTAL if incremental else SyncMode.FULL,
        incremental_column=incremental,
        encryption_mode=EncryptionMode.COLUMNS if lists["encrypted_columns"] else EncryptionMode.OFF,
        compression_mode=CompressionMode.COLUMNS if lists["compressed_columns"] else CompressionMode.OFF,
        **lists,
    )


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
