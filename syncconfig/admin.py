"""Admin for table configuration: list, edit (validated by the shared schema), history, YAML import and export.

The engine extends this admin with the table's runs and the "Sync now" action and buttons
(`syncengine.table_admin`): configuration knows nothing of runs.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.middleware.csrf import CsrfViewMiddleware
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.csrf import csrf_exempt
from simple_history.admin import SimpleHistoryAdmin

from syncconfig import services, yaml_io
from syncconfig.choices import CompressionMode, EncryptionMode, ScheduleKind, SyncMode
from syncconfig.forms import LIST_FIELDS, ImportConfirmForm, ImportUploadForm, TableConfigForm
from syncconfig.models import TableConfig
from syncconfig.reporting import change_text, import_summary_lines

EXPORT_FILENAME = "tables.yaml"
# An upload of the largest document, or its confirm step (the document in base64), with the form around it.
MAX_IMPORT_REQUEST_BYTES = yaml_io.MAX_DOCUMENT_BYTES * 4 // 3 + 64 * 1024


class ScheduleKindFilter(admin.SimpleListFilter):
    title = "schedule"
    parameter_name = "schedule_kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(ScheduleKind.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[TableConfig]) -> QuerySet[TableConfig]:
        value = self.value()
        if value == ScheduleKind.CRON:
            return queryset.exclude(schedule__in=ScheduleKind.keywords())
        if value in ScheduleKind.keywords():
            return queryset.filter(schedule=value)
        return queryset


def _yaml_download(text: str) -> HttpResponse:
    response = HttpResponse(text, content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{EXPORT_FILENAME}"'
    return response


@admin.action(description="Export selected as YAML", permissions=["view"])
def export_selected_as_yaml(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[TableConfig]
) -> HttpResponse:
    return _yaml_download(services.tables_export(names=queryset.values_list("name", flat=True)))


def _declared_length(request: HttpRequest) -> int:
    """The body's declared length; one that is not a number counts as too long (refused unread)."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return MAX_IMPORT_REQUEST_BYTES + 1


def _checked_view(request: HttpRequest) -> HttpResponse:
    """What the CSRF check is asked about: a view that is not exempt (never called)."""
    return HttpResponse(status=204)


@admin.register(TableConfig)
class TableConfigAdmin(SimpleHistoryAdmin):
    form = TableConfigForm
    actions: list[Any] = [export_selected_as_yaml]
    change_list_template = "admin/syncconfig/tableconfig/change_list.html"
    import_template = "admin/syncconfig/tableconfig/import.html"

    list_display: tuple[str, ...] = (
        "name",
        "source",
        "target",
        "sync_mode",
        "schedule",
        "encryption_mode",
        "compression_mode",
        "enabled",
    )
    list_filter = (
        "sync_mode",
        ScheduleKindFilter,
        "enabled",
        "encryption_mode",
        "compression_mode",
        "schema_drift",
    )
    search_fields = (
        "name",
        "snowflake_database",
        "snowflake_schema",
        "snowflake_table",
        "postgres_schema",
        "postgres_table",
        "notes",
    )
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "enabled", "notes")}),
        ("Source and target", {"fields": ("snowflake_database", "snowflake_schema", "snowflake_table",
                                          "postgres_schema", "postgres_table")}),
        ("Sync", {"fields": ("sync_mode", "incremental_column", "schedule", "primary_key", "schema_drift",
                             "batch_size", "parallel_slices", "max_staleness_minutes")}),
        ("Columns", {"fields": ("include_columns", "exclude_columns", "column_names")}),
        ("Encryption", {"fields": ("encryption_mode", "encrypted_columns", "searchable_columns",
                                   "clear_columns")}),
        ("Compression", {"fields": ("compression_mode", "compressed_columns")}),
        ("Deletes, history and checks", {"fields": ("deletes_mode", "deletes_max_ratio", "keep_history", "lineage",
                                                    "reconcile_schedule")}),
        ("Timestamps", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )  # fmt: skip

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """The add page's initial data from its query string, with column lists joined and the modes their
        columns call for: listed encrypted or compressed columns, an incremental column."""
        initial = super().get_changeform_initial_data(request)
        # Several columns come as repeated keys (`?primary_key=A&primary_key=B`, as the source browser sends
        # them); each list becomes the field's one-name-per-line text.
        for field in LIST_FIELDS:
            names = [name for name in request.GET.getlist(field) if name]
            if names:
                initial[field] = "\n".join(names)
        if initial.get("encrypted_columns"):
            initial.setdefault("encryption_mode", EncryptionMode.COLUMNS)
        if initial.get("compressed_columns"):
            initial.setdefault("compression_mode", CompressionMode.COLUMNS)
        if initial.get("incremental_column"):
            initial.setdefault("sync_mode", SyncMode.INCREMENTAL)
        return initial

    @admin.display(description="Snowflake source", ordering="snowflake_table")
    def source(self, obj: TableConfig) -> str:
        return obj.source_display

    @admin.display(description="PostgreSQL target", ordering="postgres_table")
    def target(self, obj: TableConfig) -> str:
        return obj.target_display

    # --- audited saves and deletes, one instance at a time ---

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        form.user = request.user  # a class made for this request: the protection rules depend on who edits
        return form

    def save_model(self, request: HttpRequest, obj: TableConfig, form: Any, change: bool) -> None:
        services.table_save(table=obj, user=request.user, reason="admin edit" if change else "admin add")

    def delete_model(self, request: HttpRequest, obj: TableConfig) -> None:
        services.table_delete(table=obj, user=request.user, reason="admin delete")

    def has_delete_permission(self, request: HttpRequest, obj: TableConfig | None = None) -> bool:
        """A table that encrypts columns is deleted only by whoever may weaken protection: its delete page and
        the bulk delete answer 403 (and the change page shows no delete link) rather than fail in the save."""
        if not super().has_delete_permission(request, obj):
            return False
        return obj is None or services.table_delete_allowed(table=obj, user=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[TableConfig]) -> None:
        # Not queryset.delete(): the engine keeps schedules in step from per-instance delete signals. All or
        # nothing: a table refused half-way leaves the ones before it in place.
        with transaction.atomic():
            for table in queryset:
                services.table_delete(table=table, user=request.user, reason="admin delete")

    # --- YAML import and export pages ---

    def get_urls(self) -> list[Any]:
        extra = [
            # CSRF is checked in the view, after the body's declared size: the CSRF middleware would read the
            # whole upload (request.POST) before the view could refuse it.
            path(
                "import/",
                self.admin_site.admin_view(csrf_exempt(self.import_view)),
                name="syncconfig_tableconfig_import",
            ),
            path(
                "export/", self.admin_site.admin_view(self.export_view), name="syncconfig_tableconfig_export"
            ),
        ]
        return extra + super().get_urls()

    def export_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return _yaml_download(services.tables_export())

    def import_view(self, request: HttpRequest) -> HttpResponse:
        """Upload -> preview (a dry run) -> confirm. The confirm step applies only the plan that was previewed."""
        if not (self.has_add_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied
        env = settings.FDM_ENV or None
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import tables from YAML",
            "env": env,
            "upload_form": ImportUploadForm(),
        }
        if request.method != "POST":
            return TemplateResponse(request, self.import_template, context)
        if _declared_length(request) > MAX_IMPORT_REQUEST_BYTES:
            # Refused from the header, before the body is read: a file this size cannot be a valid document.
            limit = yaml_io.MAX_DOCUMENT_BYTES
            context["form_errors"] = [
                f"The file is larger than the limit of {limit} bytes; nothing was read."
            ]
            return TemplateResponse(request, self.import_template, context, status=413)
        refused = CsrfViewMiddleware(_checked_view).process_view(request, _checked_view, (), {})
        if refused is not None:
            return refused

        if "confirm" in request.POST:
            confirm = ImportConfirmForm(request.POST)
            if not confirm.is_valid():
                context["form_errors"] = [e for errors in confirm.errors.values() for e in errors]
                return TemplateResponse(request, self.import_template, context)
            document, source = confirm.cleaned_data["document"], confirm.cleaned_data["source"]
            prune = confirm.cleaned_data["prune"]
            self._check_prune_permission(request, prune)
            result = services.tables_import(
                document=document,
                env=env,
                prune=prune,
                user=request.user,
                source=source,
                via="admin import",
                expect_digest=confirm.cleaned_data["digest"],
            )
            if result.ok:
                self.message_user(request, import_summary_lines(result, source=source)[0], messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:syncconfig_tableconfig_changelist"))
            # The plan changed under us, or the document no longer validates: show a fresh preview.
        else:
            upload = ImportUploadForm(request.POST, request.FILES)
            if not upload.is_valid():
                context["upload_form"] = upload
                return TemplateResponse(request, self.import_template, context)
            document, source = upload.document()
            prune = upload.cleaned_data["prune"]
            self._check_prune_permission(request, prune)
            result = None

        preview = services.tables_import(
            document=document,
            env=env,
            dry_run=True,
            prune=prune,
            user=request.user,  # the preview shows what this user may not change too
            source=source,
            via="admin import",
        )
        if source == ImportUploadForm.PASTED and preview.errors:
            # Keep the pasted text in the box, so the mistake can be fixed where it is.
            context["upload_form"] = ImportUploadForm(initial={"text": document.decode("utf-8", "replace")})
        context.update(
            preview=preview,
            # A failed confirm whose document still validates failed because the stored tables changed.
            errors=preview.errors or (result.errors if result is not None else []),
            source=source,
            updated=[(change.name, change_text(change.changes)) for change in preview.updated],
            confirm_form=ImportConfirmForm(
                initial={
                    "document": ImportConfirmForm.encode(document),
                    "source": source,
                    "prune": prune,
                    "digest": preview.digest,
                }
            ),
        )
        return TemplateResponse(request, self.import_template, context)

    def _check_prune_permission(self, request: HttpRequest, prune: bool) -> None:
        if prune and not self.has_delete_permission(request):
            raise PermissionDenied
