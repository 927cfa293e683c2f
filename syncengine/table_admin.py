"""The engine's part of the table admin: the tables' list as a status board (a state badge first, the last run,
the next one, freshness against the limit, a filter and sort by state), each table's latest runs, the
"Sync now" action and the change page's sync buttons.

Configuration's admin (`syncconfig.admin`) knows nothing of runs; this module replaces its registration with a
subclass that adds them. Imported by SyncEngineConfig.ready(), after the admin has discovered every app's admin.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import admin
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from syncconfig.admin import TableConfigAdmin as ConfigurationAdmin
from syncconfig.models import TableConfig
from syncengine import schedules, selectors
from syncengine.admin import SyncRunInline, TableRunsAdminMixin, sync_now
from syncengine.choices import RunCheckStatus, RunStatus, TableState
from syncengine.models import SyncRun
from syncengine.reconciliation_admin import reconcile_now, reconcile_view
from syncengine.run_text import duration_text, seconds_text


class StateFilter(admin.SimpleListFilter):
    """Tables by state: failing, late, running, never run, healthy, disabled."""

    title = "status"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(TableState.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[TableConfig]) -> QuerySet[TableConfig]:
        value = self.value()
        # `state` is an annotation of the admin's queryset (selectors.tables_with_state).
        return queryset.filter(state=value) if value in TableState.values else queryset  # type: ignore[misc]


def state_badge(state: str) -> str:
    return format_html('<span class="fdm-badge fdm-state-{}">{}</span>', state, TableState(state).label)


def _run_url(pk: int) -> str:
    return reverse("admin:syncengine_syncrun_change", args=[pk])


def _run_facts(run: SyncRun) -> str:
    """Duration and rows of a finished run, in a few words."""
    parts = []
    if run.duration is not None:
        parts.append(seconds_text(run.duration.total_seconds()))
    if run.status == RunStatus.SUCCEEDED:
        parts.append(f"{run.rows_extracted:,} rows")
        if run.reconciliation_status == RunCheckStatus.MISMATCH:
            parts.append("copy differs from source")
    elif run.status == RunStatus.FAILED:
        parts.append("failed")
    elif run.status == RunStatus.CANCELLED:
        parts.append("cancelled")
    return " · ".join(parts)


# The mixin comes first: its change form template and queryset wrap configuration's.
class TableConfigAdmin(TableRunsAdminMixin, ConfigurationAdmin):  # type: ignore[misc]  # both type ModelAdmin's attributes
    inlines = [SyncRunInline]  # the table's latest runs
    actions = [*ConfigurationAdmin.actions, sync_now, reconcile_now]
    list_display = (
        "status_badge",
        "name",
        "source_and_target",
        "sync_mode",
        "schedule",
        "last_run",
        "next_run",
        "freshness",
        "protection",
    )
    list_display_links = ("name",)
    view_on_site = False  # a table has no page outside the admin
    list_filter = (StateFilter, *ConfigurationAdmin.list_filter)  # type: ignore[assignment,misc]  # a filter class first
    list_per_page = 50

    class Media:
        css = {"all": ["syncengine/cockpit.css"]}

    def get_urls(self) -> list[Any]:
        reconcile_url = path(
            "<path:object_id>/reconcile/",
            self.admin_site.admin_view(self.reconcile_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_reconcile",
        )
        return [reconcile_url, *super().get_urls()]

    def reconcile_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return reconcile_view(self, request, object_id)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        reconcile_url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_reconcile", args=[object_id]
        )
        extra_context = {**(extra_context or {}), "fdm_reconcile_url": reconcile_url}
        return super().change_view(request, object_id, form_url=form_url, extra_context=extra_context)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # State, latest runs and freshness come with the tables (subqueries), so the list filters and sorts
        # by them; the page's runs and next schedules are read once per page (get_changelist_instance).
        return selectors.tables_with_state(ConfigurationAdmin.get_queryset(self, request), now=timezone.now())

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        tables = list(changelist.result_list)
        ids = {i for t in tables for i in (t.last_run_id, t.active_run_id) if i is not None}
        runs = selectors.runs_by_id(ids=ids)
        next_runs = schedules.tables_next_run(tables=tables)
        for table in tables:
            table.fdm_last_run = runs.get(table.last_run_id)
            table.fdm_active_run = runs.get(table.active_run_id)
            table.fdm_next_run = next_runs.get(table.pk)
        return changelist

    @admin.display(description="status", ordering="state_rank")
    def status_badge(self, table: Any) -> str:
        return state_badge(table.state)

    @admin.display(description="source → target", ordering="snowflake_table")
    def source_and_target(self, table: TableConfig) -> str:
        return format_html('{}<span class="fdm-sub">→ {}</span>', table.source_display, table.target_display)

    @admin.display(description="last run", ordering="last_run_id")
    def last_run(self, table: Any) -> str:
        active = getattr(table, "fdm_active_run", None)
        if active is not None:
            since = active.started_at or active.queued_at
            what = "running" if active.status == RunStatus.RUNNING else "queued"
            return format_html(
                '<a href="{}">{} {}</a><span class="fdm-sub">{}</span>',
                _run_url(active.pk),
                what,
                naturaltime(since),
                f"{active.progress_rows:,} rows so far" if active.status == RunStatus.RUNNING else "",
            )
        run = getattr(table, "fdm_last_run", None)
        if run is None:
            return mark_safe('<span class="fdm-quiet">never</span>')
        when = run.finished_at or run.queued_at
        css = "fdm-failing-text" if run.status == RunStatus.FAILED else ""
        return format_html(
            '<a href="{}" class="{}">{}</a><span class="fdm-sub">{}</span>',
            _run_url(run.pk),
            css,
            naturaltime(when),
            _run_facts(run),
        )

    @admin.display(description="next run")
    def next_run(self, table: Any) -> str:
        moment: datetime | None = getattr(table, "fdm_next_run", None)
        if not table.enabled:
            return mark_safe('<span class="fdm-quiet">disabled</span>')
        if moment is None:
            return mark_safe('<span class="fdm-quiet">manual</span>')
        return format_html(
            '<span title="{}">{}</span>', f"{moment:%Y-%m-%d %H:%M:%S %Z}", naturaltime(moment)
        )

    @admin.display(description="freshness", ordering="last_success_finished_at")
    def freshness(self, table: Any) -> str:
        now = timezone.now()
        fresh = selectors.Freshness.of(table, table.last_success_finished_at, now)
        age = duration_text(fresh.seconds)
        limit = table.max_staleness_minutes
        limit_text = f"limit {duration_text(limit * 60)}" if limit else "no limit"
        if not fresh.ever_succeeded:
            age = "never synced"
        css = "fdm-late-text" if fresh.past_limit else ""
        return format_html('<span class="{}">{}</span><span class="fdm-sub">{}</span>', css, age, limit_text)

    @admin.display(description="protection")
    def protection(self, table: TableConfig) -> str:
        parts = []
        if table.encryption_mode != "off":
            parts.append(
                "encrypted" if table.encryption_mode == "all" else f"{len(table.encrypted_columns)} encrypted"
            )
        if table.compression_mode != "off":
            parts.append(
                "compressed"
                if table.compression_mode == "auto"
                else f"{len(table.compressed_columns)} compressed"
            )
        return ", ".join(parts) if parts else "-"


def register(site: admin.AdminSite = admin.site) -> None:
    """Put the engine's table admin in place of configuration's (once, however often ready() runs)."""
    if site.is_registered(TableConfig):
        if isinstance(site.get_model_admin(TableConfig), TableConfigAdmin):
            return
        site.unregister(TableConfig)
    site.register(TableConfig, TableConfigAdmin)
