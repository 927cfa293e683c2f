"""The engine's panel on the admin's front page: tables by state, runs per day, what is failing, what is
stale, and the queue. Registered with the admin site by SyncEngineConfig.ready(); built from selectors in a
fixed number of queries whatever the number of tables and runs (a test pins it)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from fdm.admin_site import DashboardPanel
from syncconfig.models import TableConfig
from syncengine import alerts, selectors
from syncengine.choices import TableState
from syncengine.run_text import duration_text, first_line

CHART_DAYS = 14
STALEST_SHOWN = 5
# The order the state counts are shown in: what needs a person first.
STATE_ORDER = (
    TableState.FAILING,
    TableState.LATE,
    TableState.RUNNING,
    TableState.NEVER,
    TableState.HEALTHY,
    TableState.DISABLED,
)


@dataclass(frozen=True)
class Bar:
    """One day's column in the runs chart, in SVG units."""

    x: float
    width: float
    succeeded_y: float
    succeeded_height: float
    failed_y: float
    failed_height: float
    label: str
    show_label: bool
    title: str


def runs_chart(days: list[selectors.DayOfRuns], *, width: int = 560, height: int = 160) -> dict[str, Any]:
    """Stacked bars (succeeded below, failed on top) for an inline SVG: no script, no library, no CDN."""
    top_margin, bottom_margin, left_margin = 8, 22, 32
    plot_height = height - top_margin - bottom_margin
    plot_width = width - left_margin
    peak = max([day.succeeded + day.failed for day in days] + [1])
    slot = plot_width / max(len(days), 1)
    bars = []
    baseline = top_margin + plot_height
    for index, day in enumerate(days):
        ok_height = plot_height * day.succeeded / peak
        failed_height = plot_height * day.failed / peak
        bars.append(
            Bar(
                x=round(left_margin + index * slot + slot * 0.15, 1),
                width=round(slot * 0.7, 1),
                succeeded_y=round(baseline - ok_height, 1),
                succeeded_height=round(ok_height, 1),
                failed_y=round(baseline - ok_height - failed_height, 1),
                failed_height=round(failed_height, 1),
                label=f"{day.day:%b} {day.day.day}",
                show_label=(len(days) - 1 - index) % 2 == 0,
                title=f"{day.day:%a %b} {day.day.day}: {day.succeeded} succeeded, {day.failed} failed",
            )
        )
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "peak": peak,
        "baseline": baseline,
        "top": top_margin,
        "left": left_margin,
        "label_y": height - 6,
        "total_succeeded": sum(day.succeeded for day in days),
        "total_failed": sum(day.failed for day in days),
    }


@dataclass(frozen=True)
class Column:
    """One day's column in a one-series chart, in SVG units."""

    x: float
    y: float
    width: float
    height: float
    label: str
    show_label: bool
    title: str


def series_chart(
    days: list[selectors.DayOfRuns],
    *,
    value: Callable[[selectors.DayOfRuns], float],
    describe: Callable[[float], str],
    axis: Callable[[float], str],
) -> dict[str, Any]:
    """One value per day as bars for an inline SVG (rows loaded, the longest run): no script, no CDN.
    `describe` words a value for its tooltip, `axis` for the scale's top label."""
    width, height = 460, 130
    top_margin, bottom_margin, left_margin, right_margin = 8, 22, 40, 16  # the last day's label fits
    plot_height = height - top_margin - bottom_margin
    slot = (width - left_margin - right_margin) / max(len(days), 1)
    values = [value(day) for day in days]
    peak = max([*values, 0]) or 1
    baseline = top_margin + plot_height
    columns = []
    for index, (day, amount) in enumerate(zip(days, values, strict=True)):
        bar_height = plot_height * amount / peak
        columns.append(
            Column(
                x=round(left_margin + index * slot + slot * 0.15, 1),
                y=round(baseline - bar_height, 1),
                width=round(slot * 0.7, 1),
                height=round(bar_height, 1),
                label=f"{day.day:%b} {day.day.day}",
                show_label=(len(days) - 1 - index) % 2 == 0,
                title=f"{day.day:%a %b} {day.day.day}: {describe(amount)}",
            )
        )
    return {
        "width": width,
        "height": height,
        "columns": columns,
        "peak": axis(peak if any(values) else 0),
        "baseline": baseline,
        "top": top_margin,
        "left": left_margin,
        "label_y": height - 6,
    }


def _rows_text(rows: float) -> str:
    rows = int(rows)
    if rows >= 1_000_000:  # noqa: PLR2004 - millions
        return f"{rows / 1_000_000:.1f}M rows"
    if rows >= 10_000:  # noqa: PLR2004 - thousands, once they get long
        return f"{rows / 1000:.0f}k rows"
    return f"{rows:,} rows"


def _rows_axis(rows: float) -> str:
    """A row count in at most five characters: 915k, 1.2M."""
    rows = int(rows)
    if rows >= 1_000_000:  # noqa: PLR2004 - millions
        return f"{rows / 1_000_000:.1f}M"
    if rows >= 1000:  # noqa: PLR2004 - thousands
        return f"{rows / 1000:.0f}k"
    return str(rows)


def _longest_text(seconds: float) -> str:
    return duration_text(seconds) if seconds else "no successful run"


def _table_url(table: TableConfig) -> str:
    return reverse("admin:syncconfig_tableconfig_change", args=[table.pk])


def _run_url(pk: int) -> str:
    return reverse("admin:syncengine_syncrun_change", args=[pk])


def overview(*, now: datetime) -> dict[str, Any]:
    """Everything the panel shows: five queries (tables with their latest runs' ids, those runs, runs per
    day, the queue, key rotations under way)."""
    statuses = selectors.table_statuses(tables=TableConfig.objects.order_by("name"), now=now, with_state=True)
    counts = Counter(status.state for status in statuses)
    board_url = reverse("admin:syncconfig_tableconfig_changelist")
    failing = [
        {
            "name": status.table.name,
            "url": _table_url(status.table),
            "run_url": _run_url(status.last_run.pk),
            "error": first_line(status.last_run.error_message) or "no error recorded",
            "when": status.last_run.finished_at,
        }
        for status in statuses
        if status.state == TableState.FAILING and status.last_run is not None
    ]
    enabled = [status for status in statuses if status.table.enabled]
    # Tables past their limit first, then the oldest data.
    stalest = sorted(
        enabled, key=lambda status: (status.freshness.past_limit, status.freshness.seconds), reverse=True
    )[:STALEST_SHOWN]
    queue = selectors.run_queue()
    return {
        "states": [
            {
                "state": state.value,
                "label": state.label,
                "count": counts.get(state, 0),
                "url": f"{board_url}?state={state.value}",
            }
            for state in STATE_ORDER
        ],
        "table_count": len(statuses),
        "failing": failing,
        "stalest": [
            {
                "name": status.table.name,
                "url": _table_url(status.table),
                "age": duration_text(status.freshness.seconds),
                "ever_succeeded": status.freshness.ever_succeeded,
                "limit": duration_text(status.table.max_staleness_minutes * 60)
                if status.table.max_staleness_minutes
                else None,
                "late": status.freshness.past_limit,
            }
            for status in stalest
        ],
        **_charts(selectors.runs_per_day(days=CHART_DAYS, now=now)),
        "chart_days": CHART_DAYS,
        "queue": {
            "waiting": queue.waiting,
            "running": queue.running,
            "oldest_wait": duration_text((now - queue.oldest_waiting_since).total_seconds())
            if queue.oldest_waiting_since
            else None,
            "runs_url": reverse("admin:syncengine_syncrun_changelist"),
        },
        "board_url": board_url,
        "rotations": [
            {
                "name": rotation.table,
                "url": reverse("admin:syncconfig_tableconfig_changelist") + f"?q={rotation.table}",
                "remaining": rotation.remaining,
                "unchanged_for": duration_text((now - rotation.since).total_seconds()),
                "stuck": rotation.stuck,
            }
            for rotation in alerts.rotations_under_way(now=now)
        ],
    }


def _charts(days: list[selectors.DayOfRuns]) -> dict[str, Any]:
    """The runs chart, and per day the rows the successful runs loaded and the longest of them."""
    return {
        "chart": runs_chart(days),
        "rows_chart": series_chart(days, value=lambda day: day.rows, describe=_rows_text, axis=_rows_axis),
        "longest_chart": series_chart(
            days, value=lambda day: day.longest_seconds, describe=_longest_text, axis=duration_text
        ),
        "rows_total": _rows_text(sum(day.rows for day in days)),
    }


def panel(request: HttpRequest) -> DashboardPanel | None:
    """The front page's panel, for users who may see runs."""
    if not request.user.has_perm("syncengine.view_syncrun"):
        return None
    return DashboardPanel("admin/syncengine/dashboard.html", overview(now=timezone.now()))
