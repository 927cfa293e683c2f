"""The admin's front page: tables by state, runs per day, what is failing, what is stale, the queue."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from fdm.notifications.choices import IncidentKind
from fdm.notifications.services import observation_record
from syncconfig.models import TableConfig
from syncengine import dashboard, services
from syncengine.choices import RunStatus, RunTrigger, TableState

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    return client


def _finished(table, status, *, error="", days_ago=0):
    run = services.run_create(table=table, trigger=RunTrigger.SCHEDULE)
    run.start(executor="worker:1")
    run.finish(status, error or None)
    if days_ago:
        moment = timezone.now() - timedelta(days=days_ago)
        type(run).objects.filter(pk=run.pk).update(started_at=moment, finished_at=moment)
    return run


@pytest.fixture
def tables(make_table):
    healthy = make_table()
    _finished(healthy, RunStatus.SUCCEEDED, days_ago=3)
    _finished(healthy, RunStatus.SUCCEEDED)
    failing = make_table()
    _finished(failing, RunStatus.SUCCEEDED, days_ago=1)
    _finished(failing, RunStatus.FAILED, error="column AMOUNT overflows numeric(10,2)\nTraceback follows")
    late = make_table(max_staleness_minutes=5)
    TableConfig.objects.filter(pk=late.pk).update(created_at=timezone.now() - timedelta(hours=2))
    never = make_table()
    running = make_table()
    services.run_create(table=running, trigger=RunTrigger.ADMIN)
    disabled = make_table(enabled=False)
    return {
        TableState.HEALTHY: healthy,
        TableState.FAILING: failing,
        TableState.LATE: late,
        TableState.NEVER: never,
        TableState.RUNNING: running,
        TableState.DISABLED: disabled,
    }


def test_the_overview_counts_tables_by_state_and_names_what_fails(tables):
    overview = dashboard.overview(now=timezone.now())

    assert {item["state"]: item["count"] for item in overview["states"]} == {state: 1 for state in TableState}
    [failing] = overview["failing"]
    assert failing["name"] == tables[TableState.FAILING].name
    assert failing["error"] == "column AMOUNT overflows numeric(10,2)"
    assert overview["stalest"][0]["name"] == tables[TableState.LATE].name and overview["stalest"][0]["late"]
    assert overview["queue"]["waiting"] == 1 and overview["queue"]["oldest_wait"] is not None
    bars = overview["chart"]["bars"]
    assert len(bars) == dashboard.CHART_DAYS
    assert (overview["chart"]["total_succeeded"], overview["chart"]["total_failed"]) == (3, 1)
    assert bars[-1].failed_height > 0 and bars[-4].succeeded_height > 0


def test_the_front_page_shows_the_dashboard_and_the_sections_in_the_operators_order(admin_client, tables):
    page = admin_client.get("/admin/").content.decode()

    assert "Failing now" in page and "column AMOUNT overflows numeric(10,2)" in page
    assert '<svg class="fdm-chart"' in page
    assert "<script>" not in page  # no inline script: the Content-Security-Policy would refuse it
    order = [page.index(f">{name}</a>") for name in ("Configuration", "Runs", "Audit", "Access", "Internals")]
    assert order == sorted(order)


def test_the_dashboard_reads_the_same_number_of_queries_for_any_number_of_tables(make_table, tables):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            dashboard.overview(now=timezone.now())
        return len(captured)

    few = queries()
    for _ in range(8):
        table = make_table()
        _finished(table, RunStatus.FAILED, error="boom")
        _finished(table, RunStatus.SUCCEEDED, days_ago=2)
    assert few == queries() == 5


def test_each_day_counts_the_rows_of_successful_runs_and_their_longest_duration(make_table):
    table = make_table()
    today = timezone.now()
    for seconds, rows, status in (
        (4.0, 1_000, RunStatus.SUCCEEDED),
        (9.5, 250, RunStatus.SUCCEEDED),
        (60.0, 99_999, RunStatus.FAILED),
    ):
        run = _finished(table, status, error="boom" if status == RunStatus.FAILED else "")
        type(run).objects.filter(pk=run.pk).update(
            started_at=today - timedelta(seconds=seconds), finished_at=today, rows_loaded=rows
        )

    *_, last = dashboard.selectors.runs_per_day(days=3, now=timezone.now())

    assert (last.succeeded, last.failed, last.rows, last.longest_seconds) == (2, 1, 1_250, 9.5)
    overview = dashboard.overview(now=timezone.now())
    assert overview["rows_total"] == "1,250 rows"
    assert overview["longest_chart"]["peak"] == "10 s"  # the scale rounds to whole seconds


def test_key_rotations_under_way_are_listed_the_stuck_ones_first(make_table, settings):
    settings.FDM_ROTATION_STUCK_MINUTES = 60
    now = timezone.now()
    observation_record(
        kind=IncidentKind.KEY_ROTATION_STUCK, key="ledger", value="40", now=now - timedelta(hours=3)
    )
    observation_record(
        kind=IncidentKind.KEY_ROTATION_STUCK, key="accounts", value="7", now=now - timedelta(minutes=5)
    )

    rotations = dashboard.overview(now=now)["rotations"]

    assert [(item["name"], item["remaining"], item["stuck"]) for item in rotations] == [
        ("ledger", 40, True),
        ("accounts", 7, False),
    ]
    assert rotations[0]["unchanged_for"] == "3 h"
