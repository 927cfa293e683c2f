"""Admin for run history (read-only), and the run pieces the table admin borrows.

The table configuration's admin lives in syncconfig and takes from here the latest runs (`SyncRunInline`),
the `sync_now` action and, through `TableRunsAdminMixin`, the "Sync now" / "Full refresh" buttons. Every button only
enqueues a run and shows it; the sync itself happens in a worker.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import update_wrapper
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import get_object_or_404
from django.template.loader import select_template
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from syncengine import evidence, selectors, services
from syncengine.choices import RunStatus, RunTrigger
from syncengine.models import DecryptedRead, SyncRun
from syncengine.run_options import RunOptions
from syncengine.run_text import rate_text, seconds_text, sentence, summary

INLINE_RUN_LIMIT = 10
START_SYNC_PERMISSION = "syncengine.start_sync"
CANCEL_PERMISSION = "syncengine.cancel_syncrun"

_STATUS_COLOURS: dict[str, str] = {
    RunStatus.QUEUED: "#6c757d",
    RunStatus.RUNNING: "#0d6efd",
    RunStatus.SUCCEEDED: "#198754",
    RunStatus.FAILED: "#dc3545",
    RunStatus.SKIPPED: "#b58105",
    RunStatus.CANCELLED: "#6c757d",
}


def _status_badge(run: SyncRun) -> str:
    return format_html(
        '<strong style="color: {}">{}</strong>',
        _STATUS_COLOURS.get(run.status, "inherit"),
        run.get_status_display(),
    )


def _duration(value: timedelta | None) -> str:
    return "-" if value is None else seconds_text(value.total_seconds())


def _rows(run: SyncRun) -> str:
    if run.status == RunStatus.RUNNING:
        return f"{run.progress_rows:,} so far ({run.stage or 'starting'})"
    if run.status != RunStatus.SUCCEEDED:
        return "-"
    if run.rows_extracted and not run.rows_written:
        return f"{run.rows_extracted:,} read, none changed"
    return f"{run.rows_extracted:,} read, {run.rows_written:,} changed"


class RunColumns:
    """Columns shared by the run list and the table page's latest runs."""

    @admin.display(description="status", ordering="status")
    def status_badge(self, run: SyncRun) -> str:
        return _status_badge(run)

    @admin.display(description="duration")
    def duration_display(self, run: SyncRun) -> str:
        return _duration(run.duration)

    @admin.display(description="rows")
    def rows(self, run: SyncRun) -> str:
        return _rows(run)


@admin.register(SyncRun)
class SyncRunAdmin(RunColumns, admin.ModelAdmin):
    """Run history. Nobody adds, edits or deletes runs here; queued and running runs can be cancelled."""

    list_display = [
        "id",
        "table_link",
        "status_badge",
        "trigger",
        "attempt",
        "started_at",
        "duration_display",
        "rows",
    ]
    list_display_links = ["id"]
    view_on_site = False  # a run's URL is this page
    list_filter = ["status", "trigger", "table_name", "full_refresh"]
    date_hierarchy = "queued_at"
    search_fields = ["table_name"]
    list_select_related = ["table", "requested_by"]
    ordering = ["-queued_at", "-id"]
    actions = ["cancel_runs"]
    show_full_result_count = False  # counting a long history on every page view is wasted work

    fieldsets = [
        (
            None,
            {
                "fields": [
                    "table_link",
                    "status_badge",
                    "trigger",
                    "requested_by",
                    "full_refresh_display",
                    "options_display",
                    "mode",
                    "attempt_display",
                ]
            },
        ),
        (
            "Timing",
            {
                "fields": [
                    "queued_display",
                    "not_before_display",
                    "started_display",
                    "finished_display",
                    "duration_display",
                    "heartbeat_display",
                    "progress_display",
                ]
            },
        ),
        ("Outcome", {"fields": ["error_display", "error_kind", "skip_reason", "cancel_requested_display"]}),
        ("Slices", {"fields": ["slices_display"]}),
        ("Execution", {"classes": ["collapse"], "fields": ["config_hash", "task_id", "executor"]}),
    ]
    readonly_fields = [
        "table_link",
        "status_badge",
        "full_refresh_display",
        "options_display",
        "attempt_display",
        "queued_display",
        "not_before_display",
        "started_display",
        "finished_display",
        "duration_display",
        "heartbeat_display",
        "progress_display",
        "error_display",
        "cancel_requested_display",
        "slices_display",
    ]

    @admin.display(description="slices")
    def slices_display(self, run: SyncRun) -> str:
        """A sliced run's slices: how many are done, running, queued and failed, then one row each."""
        counts = selectors.run_slice_counts(run)
        if counts is None:
            return "- (not sliced)"
        summary = ", ".join(f"{n} {status}" for status, n in counts.items())
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (p.number, p.status, p.attempt, f"{p.rows:,}", p.executor or "-", p.error_message or "")
                for p in run.slices.order_by("number")
            ),
        )
        return format_html(
            "<p>{}</p><table><thead><tr><th>slice</th><th>status</th><th>attempts</th><th>rows</th>"
            "<th>worker</th><th>error</th></tr></thead><tbody>{}</tbody></table>",
            summary,
            rows,
        )

    @admin.display(description="queued")
    def queued_display(self, run: SyncRun) -> str:
        return _moment(run.queued_at)

    @admin.display(description="not before")
    def not_before_display(self, run: SyncRun) -> str:
        return _moment(run.not_before)

    @admin.display(description="started")
    def started_display(self, run: SyncRun) -> str:
        return _moment(run.started_at)

    @admin.display(description="finished")
    def finished_display(self, run: SyncRun) -> str:
        return _moment(run.finished_at)

    @admin.display(description="last sign of life")
    def heartbeat_display(self, run: SyncRun) -> str:
        return _moment(run.heartbeat_at)

    @admin.display(description="full refresh")
    def full_refresh_display(self, run: SyncRun) -> str:
        return "yes: everything reloaded, ignoring the watermark" if run.full_refresh else "no"

    @admin.display(description="asked for")
    def options_display(self, run: SyncRun) -> str:
        parts = []
        if run.backfill_from:
            parts.append(
                f"backfill from {run.backfill_from} to {run.backfill_to or 'the newest row'} (inclusive)"
            )
        if run.allow_deletes:
            parts.append("allowed past the delete guard")
        return "; ".join(parts) or "-"

    @admin.display(description="cancel requested")
    def cancel_requested_display(self, run: SyncRun) -> str:
        return "yes" if run.cancel_requested else "no"

    @admin.display(description="error")
    def error_display(self, run: SyncRun) -> str:
        if not run.error_message:
            return "-"
        rest = "\n".join(run.error_message.strip().splitlines()[1:]).strip()
        details = "\n\n".join(part for part in (rest, run.error_traceback.strip()) if part)
        if not details:
            return sentence(run.error_message)
        return format_html(
            '<p class="fdm-error-sentence">{}</p><details class="fdm-traceback"><summary>Details and traceback'
            "</summary><pre>{}</pre></details>",
            sentence(run.error_message),
            details,
        )

    # Read-only: viewing is the only permission that matters.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SyncRun | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SyncRun | None = None) -> bool:
        return False

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(CANCEL_PERMISSION)

    @admin.display(description="table", ordering="table_name")
    def table_link(self, run: SyncRun) -> str:
        table = run.table
        if table is None:
            return format_html("{} <em>(deleted)</em>", run.table_name)
        url = reverse(f"admin:{table._meta.app_label}_{table._meta.model_name}_change", args=[table.pk])
        return format_html('<a href="{}">{}</a>', url, run.table_name)

    @admin.display(description="attempt")
    def attempt_display(self, run: SyncRun) -> str:
        parts = [str(run.attempt)]
        if run.retry_of_id:
            parts.append(
                format_html('retry of <a href="{}">#{}</a>', _run_url(run.retry_of_id), run.retry_of_id)
            )
        retries = list(run.retries.values_list("pk", flat=True))
        if retries:
            links = [format_html('<a href="{}">#{}</a>', _run_url(pk), pk) for pk in retries]
            parts.append(format_html("retried as {}", format_html(", ".join(["{}"] * len(links)), *links)))
        return format_html(" - ".join(["{}"] * len(parts)), *parts)

    @admin.display(description="progress")
    def progress_display(self, run: SyncRun) -> str:
        if run.status != RunStatus.RUNNING:
            return "-"
        return f"{run.stage or 'starting'}: {run.progress_rows:,} rows"

    @admin.action(description="Cancel selected queued or running runs", permissions=["cancel"])
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[SyncRun]) -> None:
        cancelled = 0
        for run in queryset.filter(status__in=RunStatus.active()):
            services.run_cancel(run=run)
            cancelled += 1
        if cancelled:
            self.message_user(
                request,
                f"Cancel requested for {cancelled} run(s); running ones stop at their next batch.",
                messages.SUCCESS,
            )
        else:
            self.message_user(request, "None of the selected runs was queued or running.", messages.WARNING)

    def get_urls(self):
        def wrap(view):
            def wrapper(*args, **kwargs):
                return self.admin_site.admin_view(view)(*args, **kwargs)

            return update_wrapper(wrapper, view)

        return [
            path(
                "<path:object_id>/cancel/",
                wrap(self.cancel_view),
                name=f"{self.opts.app_label}_{self.opts.model_name}_cancel",
            ),
            path(
                "<path:object_id>/live/",
                wrap(self.live_view),
                name=f"{self.opts.app_label}_{self.opts.model_name}_live",
            ),
            path(
                "<path:object_id>/evidence/",
                wrap(self.evidence_view),
                name=f"{self.opts.app_label}_{self.opts.model_name}_evidence",
            ),
            *super().get_urls(),
        ]

    def live_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The run as it goes, for the run page's poller (static/syncengine/run_live.js): status, stage, rows
        so far, rate, the log entries after the first `after`, and whether it has ended."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        run = selectors.run_get(run_id=int(object_id)) if object_id.isdigit() else None
        if run is None:
            raise Http404(f"no run with id {object_id}")
        try:
            after = max(int(request.GET.get("after", "0")), 0)
        except ValueError:
            after = 0
        return JsonResponse(_live_state(run, after=after), headers={"Cache-Control": "no-store"})

    def evidence_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The run's evidence pack as a JSON download."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        run = selectors.run_get(run_id=int(object_id)) if object_id.isdigit() else None
        if run is None:
            raise Http404(f"no run with id {object_id}")
        response = HttpResponse(
            evidence.canonical_json(evidence.run_evidence(run)), content_type="application/json"
        )
        response["Content-Disposition"] = f'attachment; filename="{evidence.evidence_filename(run)}"'
        return response

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        run = get_object_or_404(SyncRun, pk=object_id)
        if run.status not in RunStatus.active():
            self.message_user(request, f"Run #{run.pk} is already {run.status}.", messages.WARNING)
        else:
            run = services.run_cancel(run=run)
            if run.status == RunStatus.CANCELLED:
                self.message_user(request, f"Run #{run.pk} cancelled.", messages.SUCCESS)
            else:
                self.message_user(
                    request, f"Cancel requested; run #{run.pk} stops at its next batch.", messages.SUCCESS
                )
        return HttpResponseRedirect(_run_url(run.pk))

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        run = self.get_object(request, object_id)
        extra_context = dict(extra_context or {})
        if run is not None:
            extra_context.update(
                run_detail=_run_detail(run),
                can_cancel=run.status in RunStatus.active() and self.has_cancel_permission(request),
                cancel_url=reverse("admin:syncengine_syncrun_cancel", args=[run.pk]),
                evidence_url=reverse("admin:syncengine_syncrun_evidence", args=[run.pk]),
                # Sync the run's table again from its page: only for a table that still exists.
                sync_now_url=reverse("admin:syncconfig_tableconfig_sync_now", args=[run.table_id])
                if run.table_id is not None and request.user.has_perm(START_SYNC_PERMISSION)
                else "",
                run_summary=summary(run),
                live_url=reverse("admin:syncengine_syncrun_live", args=[run.pk])
                if run.status in RunStatus.active()
                else "",
                live=_live_state(run, after=len(run.log)),
            )
        return super().change_view(request, object_id, form_url, extra_context=extra_context)


def _run_url(pk: int) -> str:
    return reverse("admin:syncengine_syncrun_change", args=[pk])


def _moment(value: datetime | None) -> str:
    """A moment to the second, in the current time zone (log entries use the same precision)."""
    if value is None:
        return "-"
    return f"{timezone.localtime(value):%Y-%m-%d %H:%M:%S %Z}"


def _log_time(value: Any) -> str:
    try:
        return f"{timezone.localtime(datetime.fromisoformat(str(value))):%Y-%m-%d %H:%M:%S}"
    except ValueError:
        return str(value)


# What each recorded check means, in words; a check not listed here shows its name in plain words.
CHECK_LABELS = {
    "rows_extracted": "Rows read from the source",
    "rows_staged": "Rows in the staging table",
    "rows_published": "Rows in the published result",
    "row_counts_match": "Row counts match (source, staging, published)",
    "rows_unchanged": "Rows already up to date",
    "primary_key_not_null": "No row without a primary key",
    "primary_key_unique": "Primary key unique in the source",
    "distinct_keys": "Distinct primary keys",
    "duplicates_resolved": "Duplicate keys resolved (the last one kept)",
    "dictionaries_dropped": "Old compression dictionaries dropped",
}


def _check_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{key.replace('_', ' ')}: {_check_value(item)}" for key, item in value.items())
    if isinstance(value, list):
        return ", ".join(_check_value(item) for item in value)
    return "-" if value is None else str(value)


def _checks(checks: Any) -> list[dict[str, str]]:
    if not isinstance(checks, dict):
        return []
    rows = []
    for key, value in checks.items():
        if key == "protection":
            continue
        label = CHECK_LABELS.get(key, key.replace("_", " ").capitalize())
        failed = value is False
        rows.append({"label": label, "value": _check_value(value), "failed": "yes" if failed else ""})
    return rows


def _protection(checks: Any) -> list[dict[str, str]]:
    columns = checks.get("protection") if isinstance(checks, dict) else None
    if not isinstance(columns, dict):
        return []
    rows = []
    for column, stats in sorted(columns.items()):
        stats = stats if isinstance(stats, dict) else {}
        ratio = stats.get("compression_ratio")
        rows.append(
            {
                "column": column,
                "how": "encrypted" if stats.get("encrypted") else "compressed",
                "stored": f"{stats.get('bytes_stored', 0):,}",
                "ratio": f"{ratio:.1f}x" if isinstance(ratio, int | float) else "-",
            }
        )
    return rows


def _watermark(value: Any) -> str:
    """A watermark in words: its value, and its type in brackets."""
    if value is None:
        return "none (everything is read)"
    if isinstance(value, dict) and "value" in value:
        kind = str(value.get("type", "")).replace("_", " ")
        shown = str(value["value"]).replace("T", " ")
        if shown.endswith(".000000"):
            shown = shown[: -len(".000000")]
        return f"{shown} ({kind})" if kind else shown
    return json.dumps(value, sort_keys=True, default=str)


def _log_entries(entries: list[Any]) -> list[dict[str, str]]:
    return [
        {
            "ts": _log_time(entry.get("ts", "")),
            "level": entry.get("level", "info"),
            "message": entry.get("message", ""),
            "fields": ", ".join(f"{key}={value}" for key, value in (entry.get("fields") or {}).items()),
        }
        for entry in entries
        if isinstance(entry, dict)
    ]


def _live_state(run: SyncRun, *, after: int) -> dict[str, Any]:
    """What the run page's poller shows: the run's state now, and the log entries it has not shown yet."""
    duration = run.duration
    seconds = duration.total_seconds() if duration is not None else None
    log = run.log if isinstance(run.log, list) else []
    return {
        "id": run.pk,
        "status": run.status,
        "status_label": run.get_status_display(),
        "status_colour": _STATUS_COLOURS.get(run.status, "inherit"),
        "terminal": run.is_terminal,
        "stage": run.stage or ("starting" if run.status == RunStatus.RUNNING else "-"),
        "rows": f"{run.progress_rows:,}" if run.status == RunStatus.RUNNING else f"{run.rows_extracted:,}",
        "rate": rate_text(
            run.progress_rows if run.status == RunStatus.RUNNING else run.rows_extracted, seconds
        ),
        "elapsed": seconds_text(seconds) if seconds is not None else "-",
        "summary": summary(run),
        "cancel_requested": run.cancel_requested,
        "log": _log_entries(log[after:]),
        "log_count": len(log),
    }


def _run_detail(run: SyncRun) -> dict[str, Any]:
    """What the run page shows below the fields, shaped for the template."""
    stages = [
        ("Extract", run.extract_seconds, run.rows_extracted, run.bytes_extracted),
        ("Transform", run.transform_seconds, None, None),
        ("Load", run.load_seconds, run.rows_loaded, run.bytes_loaded),
        ("Publish", run.publish_seconds, run.rows_written, None),
    ]
    unchanged = run.checks.get("rows_unchanged") if isinstance(run.checks, dict) else None
    counts = [
        ("read from the source", run.rows_extracted),
        ("loaded into staging", run.rows_loaded),
        ("new", run.rows_inserted),
        ("updated", run.rows_updated),
        ("deleted", run.rows_deleted),
    ]
    if unchanged is not None:
        counts.append(("already up to date (not written)", unchanged))
    return {
        "stages": [
            {
                "name": name,
                "seconds": "-" if seconds is None else f"{seconds:.2f} s",
                "rows": "" if rows is None else f"{rows:,}",
                "bytes": "" if size is None else f"{size:,}",
            }
            for name, seconds, rows, size in stages
        ],
        "counts": [(label, f"{count:,}") for label, count in counts],
        "watermark_before": _watermark(run.watermark_before),
        "watermark_after": _watermark(run.watermark_after),
        "drift": [str(item) for item in run.drift] if isinstance(run.drift, list) else [str(run.drift)],
        "checks": _checks(run.checks),
        "protection": _protection(run.checks),
        "log": _log_entries(run.log if isinstance(run.log, list) else []),
        "has_metrics": run.status == RunStatus.SUCCEEDED or run.rows_extracted > 0,
    }


class LatestRunsFormSet(BaseInlineFormSet):
    """Only the latest runs: a table's history grows without bound, its page must not."""

    def get_queryset(self) -> QuerySet[SyncRun]:
        if not hasattr(self, "_latest_runs"):
            runs = super().get_queryset()
            # A submitted form may name a run that has since dropped out of the latest ones; it must still
            # be found, so the limit applies only when rendering.
            self._latest_runs = runs if self.is_bound else runs[:INLINE_RUN_LIMIT]
        return self._latest_runs


_INLINE_RUN_FIELDS = ("run_link", "status_badge", "trigger", "queued_at", "duration_display", "rows")


class SyncRunInline(RunColumns, admin.TabularInline):
    """The table's latest runs on its change page, each linking to its run page."""

    model = SyncRun
    fk_name = "table"
    formset = LatestRunsFormSet
    fields = _INLINE_RUN_FIELDS
    readonly_fields = _INLINE_RUN_FIELDS
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False
    verbose_name = "run"
    verbose_name_plural = f"Latest runs (up to {INLINE_RUN_LIMIT})"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="run")
    def run_link(self, run: SyncRun) -> str:
        return format_html('<a href="{}">#{}</a>', _run_url(run.pk), run.pk)


@admin.action(description="Sync now", permissions=["start_sync"])
def sync_now(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
    """Enqueue one run per selected table; with a single table, go to its run page."""
    runs = [
        services.run_enqueue(table=table, trigger=RunTrigger.ADMIN, requested_by=request.user)
        for table in queryset
    ]
    if len(runs) == 1:
        run = runs[0]
        modeladmin.message_user(
            request, f"Sync of {run.table_name} queued as run #{run.pk}.", messages.SUCCESS
        )
        return HttpResponseRedirect(_run_url(run.pk))
    modeladmin.message_user(
        request,
        f"{len(runs)} syncs queued: " + ", ".join(f"{r.table_name} (#{r.pk})" for r in runs),
        messages.SUCCESS,
    )
    return HttpResponseRedirect(reverse("admin:syncengine_syncrun_changelist"))


def sync_now_view(model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    """The change page's sync buttons (POST): "Sync now", "Full refresh", "Sync now, allowing deletes" and the
    backfill form (`backfill_from`, `backfill_to`). Enqueue, then show the run; a refused range goes back to
    the table page with the reason."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not request.user.has_perm(START_SYNC_PERMISSION):
        raise PermissionDenied
    table = model_admin.get_object(request, object_id)
    if table is None:
        raise Http404(f"no table with id {object_id}")
    full_refresh = request.POST.get("full_refresh") == "1"
    options = RunOptions(
        backfill_from=request.POST.get("backfill_from", "").strip(),
        backfill_to=request.POST.get("backfill_to", "").strip(),
        allow_deletes=request.POST.get("allow_deletes") == "1",
    )
    try:
        run = services.run_enqueue(
            table=table,
            trigger=RunTrigger.BACKFILL if options.backfill_from else RunTrigger.ADMIN,
            full_refresh=full_refresh,
            options=options,
            requested_by=request.user,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items())
        model_admin.message_user(request, f"Nothing queued for {table.name}: {problems}", messages.ERROR)
        opts = model_admin.opts
        return HttpResponseRedirect(
            reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[table.pk])
        )
    what = _run_request_words(full_refresh=full_refresh, options=options)
    model_admin.message_user(request, f"{what} of {table.name} queued as run #{run.pk}.", messages.SUCCESS)
    return HttpResponseRedirect(_run_url(run.pk))


def _run_request_words(*, full_refresh: bool, options: RunOptions) -> str:
    if options.backfill_from:
        return f"Backfill from {options.backfill_from} to {options.backfill_to or 'the newest row'}"
    what = "Full refresh" if full_refresh else "Sync"
    return f"{what}, allowing deletes," if options.allow_deletes else what


@admin.register(DecryptedRead)
class DecryptedReadAdmin(admin.ModelAdmin):
    """The audit trail of decrypted reads: append-only history, so nobody adds, changes or deletes here."""

    list_display = ("at", "username", "table_name", "columns_display", "row_count", "via", "client")
    list_filter = ("via", "table_name")
    search_fields = ("username", "table_name")
    date_hierarchy = "at"
    readonly_fields = [field.name for field in DecryptedRead._meta.fields]

    @admin.display(description="columns")
    def columns_display(self, read: DecryptedRead) -> str:
        return ", ".join(read.columns)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: DecryptedRead | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: DecryptedRead | None = None) -> bool:
        return False


class TableRunsAdminMixin(admin.ModelAdmin):
    """Mixed into the table configuration's admin: a `<id>/sync-now/` URL and the "Sync now" / "Full refresh"
    buttons on the change page. The admin also lists `SyncRunInline` in its inlines and `sync_now` in its actions.

    The buttons' template extends whichever change form the admin would otherwise use, so a history or other
    template of the admin's own keeps working.
    """

    change_form_template = "admin/syncengine/table_change_form.html"

    def get_urls(self):
        sync_now_url = path(
            "<path:object_id>/sync-now/",
            self.admin_site.admin_view(self.sync_now_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_sync_now",
        )
        check_source_url = path(
            "<path:object_id>/check-source/",
            self.admin_site.admin_view(self.check_source_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_check_source",
        )
        browse_url = path(
            "browse-source/",
            self.admin_site.admin_view(self.browse_source_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_browse_source",
        )
        check_choices_url = path(
            "browse-source/check/",
            self.admin_site.admin_view(self.check_choices_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_check_choices",
        )
        return [browse_url, check_choices_url, sync_now_url, check_source_url, *super().get_urls()]

    def check_choices_view(self, request: HttpRequest) -> HttpResponse:
        from syncengine.source_check_admin import check_choices_view

        return check_choices_view(self, request)

    def browse_source_view(self, request: HttpRequest) -> HttpResponse:
        from syncengine.source_check_admin import browse_source_view

        return browse_source_view(self, request)

    def check_source_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        from syncengine.source_check_admin import check_source_view

        return check_source_view(self, request, object_id)

    def sync_now_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return sync_now_view(self, request, object_id)

    def has_start_sync_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(START_SYNC_PERMISSION)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        app_label, model_name = self.opts.app_label, self.opts.model_name
        base = super().change_form_template or [
            f"admin/{app_label}/{model_name}/change_form.html",
            f"admin/{app_label}/change_form.html",
            "admin/change_form.html",
        ]
        if isinstance(base, list | tuple):  # several names: the first that exists
            base = select_template(base)
        context["fdm_base_change_form"] = base  # {% extends %} takes a template or a template's name
        if add and self.has_add_permission(request):
            context["fdm_browse_url"] = reverse(f"admin:{app_label}_{model_name}_browse_source")
        if obj is not None and obj.pk is not None:
            if obj.encryption_mode != "off" or obj.compression_mode != "off":
                from syncengine.protected_data import table_protection_status

                context["fdm_protection"] = table_protection_status(table=obj)
            context["fdm_can_sync"] = self.has_start_sync_permission(request)
            context["fdm_sync_now_url"] = reverse(f"admin:{app_label}_{model_name}_sync_now", args=[obj.pk])
            context["fdm_check_source_url"] = reverse(
                f"admin:{app_label}_{model_name}_check_source", args=[obj.pk]
            )
        return super().render_change_form(
            request, context, add=add, change=change, form_url=form_url, obj=obj
        )
