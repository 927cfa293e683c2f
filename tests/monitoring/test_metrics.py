"""/metrics reports fdm's sync state read from the database: exact values for a known history."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.apps import apps
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client import REGISTRY, generate_latest

from syncengine import metrics, services
from syncengine.choices import RunStatus
from syncengine.pipeline.result import StageMetrics
from tests.monitoring.conftest import LEAKY_ERROR, make_table, result, succeeded

pytestmark = pytest.mark.django_db

TABLES = ("orders", "ledger", "prices", "fx_rates")


def test_table_settings_are_reported_per_table(scenario, scrape):
    s = scrape()

    assert s.series("fdm_table_enabled") == {
        frozenset({("table", name)}): value
        for name, value in {"orders": 1, "ledger": 0, "prices": 1, "fx_rates": 1}.items()
    }
    # ledger is disabled and prices is manual: neither has a schedule.
    assert s.series("fdm_table_scheduled") == {
        frozenset({("table", name)}): value
        for name, value in {"orders": 1, "ledger": 0, "prices": 0, "fx_rates": 1}.items()
    }
    assert s.series("fdm_table_max_staleness_seconds") == {
        frozenset({("table", "orders")}): 7200,
        frozenset({("table", "fx_rates")}): 1800,
    }


def test_freshness_counts_from_the_latest_success(scenario, scrape):
    s = scrape()

    assert s.value("fdm_table_last_success_timestamp_seconds", table="orders") == (
        scenario.orders_success.finished_at.timestamp()
    )
    assert s.value("fdm_table_last_success_timestamp_seconds", table="fx_rates") == (
        scenario.fx_success.finished_at.timestamp()
    )
    s.age("fdm_table_freshness_seconds", scenario.orders_success.finished_at, table="orders")
    s.age("fdm_table_freshness_seconds", scenario.fx_success.finished_at, table="fx_rates")
    assert 3 * 3600 - 61 < s.value("fdm_table_freshness_seconds", table="orders") < 3 * 3600 - 59


def test_a_table_that_never_succeeded_is_as_stale_as_its_configuration_is_old(scenario, scrape):
    s = scrape()

    assert not s.has("fdm_table_last_success_timestamp_seconds", table="ledger")
    assert not s.has("fdm_table_last_success_timestamp_seconds", table="prices")
    s.age("fdm_table_freshness_seconds", scenario.ledger.created_at, table="ledger")
    s.age("fdm_table_freshness_seconds", scenario.prices.created_at, table="prices")


def test_last_status_is_the_latest_outcome_and_passes_over_skipped_runs(scenario, scrape):
    s = scrape()

    # orders' latest run was skipped; the failure before it is what counts.
    assert s.series("fdm_table_last_run_status") == {
        frozenset({("table", table), ("status", status)}): value
        for table in ("orders", "fx_rates")
        for status, value in {"succeeded": 0, "failed": 1, "cancelled": 0}.items()
    }
    assert s.value("fdm_table_last_run_timestamp_seconds", table="orders") == (
        scenario.orders_failure.finished_at.timestamp()
    )
    assert s.value("fdm_table_last_run_timestamp_seconds", table="fx_rates") == (
        scenario.fx_failure.finished_at.timestamp()
    )
    assert not s.has("fdm_table_last_run_timestamp_seconds", table="ledger")


def test_a_new_success_clears_the_failed_status(scenario, scrape):
    succeeded(
        scenario.orders,
        started=scenario.anchor,
        finished=scenario.anchor,
        result=result("orders", extract=StageMetrics(rows=1)),
    )

    s = scrape()

    assert s.value("fdm_table_last_run_status", table="orders", status="succeeded") == 1
    assert s.value("fdm_table_last_run_status", table="orders", status="failed") == 0
    assert s.value("fdm_table_last_success_timestamp_seconds", table="orders") == scenario.anchor.timestamp()


def test_runs_are_counted_by_table_and_outcome_including_deleted_tables(scenario, scrape):
    s = scrape()

    expected = {
        "orders": {"succeeded": 2, "failed": 2, "skipped": 1, "cancelled": 0},
        "ledger": {"succeeded": 0, "failed": 0, "skipped": 0, "cancelled": 0},
        "prices": {"succeeded": 0, "failed": 0, "skipped": 0, "cancelled": 0},
        "fx_rates": {"succeeded": 1, "failed": 1, "skipped": 0, "cancelled": 0},
        "retired_table": {"succeeded": 1, "failed": 0, "skipped": 0, "cancelled": 1},
    }
    assert s.series("fdm_runs_total") == {
        frozenset({("table", table), ("status", status)}): count
        for table, counts in expected.items()
        for status, count in counts.items()
    }
    assert s.families["fdm_runs"] == "counter"
    # A deleted table keeps its history, but has no configuration to report on.
    assert not s.has("fdm_table_enabled", table="retired_table")
    assert not s.has("fdm_table_freshness_seconds", table="retired_table")


def test_counts_follow_runs_that_finish_after_a_scrape_has_seen_them(scenario, scrape):
    scrape()  # counts the history, remembering the runs still queued or running
    services.run_cancel(run=scenario.prices_queued)
    scenario.prices_running.finish(RunStatus.FAILED, message="prices: worker lost")
    succeeded(scenario.fx_rates, started=scenario.anchor, finished=scenario.anchor, result=result("fx_rates"))

    s = scrape()

    assert s.value("fdm_runs_total", table="prices", status="cancelled") == 1
    assert s.value("fdm_runs_total", table="prices", status="failed") == 1
    assert s.value("fdm_runs_total", table="fx_rates", status="succeeded") == 2
    assert s.value("fdm_runs_total", table="orders", status="failed") == 2
    assert s.value("fdm_runs_in_progress", status="queued") == 1
    assert s.value("fdm_runs_in_progress", status="running") == 0


@pytest.mark.django_db(transaction=True)
def test_a_scrape_outside_any_transaction_reads_one_snapshot(scrape):
    # Committed data, and no test transaction around the request: the collector opens its own read-only one.
    orders = make_table("orders", schedule="hourly")
    hour_ago = timezone.now() - timedelta(hours=1)
    run = succeeded(
        orders, started=hour_ago, finished=hour_ago, result=result("orders", extract=StageMetrics(rows=4))
    )

    s = scrape()

    assert s.value("fdm_collector_up") == 1
    assert s.value("fdm_runs_total", table="orders", status="succeeded") == 1
    assert s.value("fdm_table_last_success_rows", table="orders", kind="extracted") == 4
    assert s.value("fdm_table_last_success_timestamp_seconds", table="orders") == run.finished_at.timestamp()
    assert not connection.in_atomic_block


def test_rows_bytes_and_stage_seconds_come_from_the_latest_success(scenario, scrape):
    s = scrape()

    rows = {"extracted": 1000, "loaded": 1000, "inserted": 900, "updated": 100, "deleted": 7}
    for kind, count in rows.items():
        assert s.value("fdm_table_last_success_rows", table="orders", kind=kind) == count
    assert s.value("fdm_table_last_success_bytes", table="orders", kind="extracted") == 52_000
    assert s.value("fdm_table_last_success_bytes", table="orders", kind="loaded") == 48_000
    stages = {"extract": 30.25, "transform": 5.5, "load": 12.0, "publish": 2.75, "total": 60.5}
    for stage, seconds in stages.items():
        assert s.value("fdm_table_last_success_duration_seconds", table="orders", stage=stage) == seconds
    assert s.value("fdm_table_last_success_rows", table="fx_rates", kind="updated") == 3
    assert s.value("fdm_table_last_success_duration_seconds", table="fx_rates", stage="total") == 60
    assert not s.series("fdm_table_last_success_rows").keys() & {
        frozenset({("table", "prices"), ("kind", "extracted")})
    }


def test_queue_depth_and_ages(scenario, scrape):
    s = scrape()

    # prices: one queued, one running; fx_rates: a retry waiting out its backoff (queued, but not yet due).
    assert s.value("fdm_runs_in_progress", status="queued") == 2
    assert s.value("fdm_runs_in_progress", status="running") == 1
    assert s.series("fdm_table_runs_active") == {
        frozenset({("table", name)}): value
        for name, value in {"orders": 0, "ledger": 0, "prices": 2, "fx_rates": 1}.items()
    }
    s.age("fdm_run_oldest_queued_age_seconds", scenario.prices_queued.queued_at)
    s.age("fdm_run_longest_running_seconds", scenario.prices_running.started_at)


def test_a_retry_that_is_not_yet_due_is_not_stuck(scenario, scrape):
    scenario.prices_queued.finish(RunStatus.CANCELLED, message="cancelled before it started")

    s = scrape()

    assert s.value("fdm_runs_in_progress", status="queued") == 1
    assert s.value("fdm_run_oldest_queued_age_seconds") == 0


def test_task_queue_liveness(scenario, scrape):
    s = scrape()

    assert s.value("fdm_worker_last_task_timestamp_seconds") == scenario.task_stopped.timestamp()
    s.age("fdm_schedule_overdue_seconds", scenario.schedule_due)
    assert s.value("fdm_collector_up") == 1


def test_an_empty_installation_reports_zeros_and_no_table_series(db, scrape):
    from django_q.models import Schedule

    Schedule.objects.all().delete()

    s = scrape()

    assert s.value("fdm_collector_up") == 1
    assert s.value("fdm_runs_in_progress", status="queued") == 0
    assert s.value("fdm_runs_in_progress", status="running") == 0
    assert s.value("fdm_run_oldest_queued_age_seconds") == 0
    assert s.value("fdm_run_longest_running_seconds") == 0
    assert s.value("fdm_schedule_overdue_seconds") == 0
    assert not s.series("fdm_table_enabled")
    assert not s.series("fdm_runs_total")
    assert not s.series("fdm_worker_last_task_timestamp_seconds")
    # Families are declared even without samples, so dashboards see the names.
    assert "# TYPE fdm_table_freshness_seconds gauge" in s.body


def test_metrics_carry_no_free_text(scenario, scrape):
    s = scrape()

    for text in ("hunter2", "db.internal", "worker-7", "advisory lock", "ORDER_ID", LEAKY_ERROR):
        assert text not in s.body
    assert settings.SECRET_KEY not in s.body
    allowed = {
        "table": {*TABLES, "retired_table"},
        "status": set(RunStatus.values),
        "kind": set(metrics.ROW_KINDS) | set(metrics.BYTE_KINDS),
        "stage": {*metrics.STAGES, "total"},
    }
    fdm_samples = [(name, labels) for name, labels in s.samples if name.startswith("fdm_")]
    assert fdm_samples
    for name, labels in fdm_samples:
        for label, value in labels:
            assert value in allowed[label], (name, label, value)


def test_an_unreadable_database_yields_only_the_collector_status(scenario, scrape):
    # Inside the test's transaction, so the rename is rolled back afterwards.
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE syncengine_syncrun RENAME TO syncengine_syncrun_moved")

    s = scrape()

    assert s.value("fdm_collector_up") == 0
    assert [name for name, _ in s.samples if name.startswith("fdm_")] == ["fdm_collector_up"]
    # The database's error stays in the log: no fdm sample carries it.
    fdm_lines = [line for line in s.body.splitlines() if "fdm_" in line]
    assert not [line for line in fdm_lines if "syncengine_syncrun" in line or "does not exist" in line]


def test_a_scrape_costs_the_same_number_of_queries_however_many_tables_and_runs(db, client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/metrics").status_code == 200
        return len(captured.captured_queries)

    # Runs from an hour ago: each scrape below also folds newly settled runs into its counts.
    hour_ago = timezone.now() - timedelta(hours=1)
    first = make_table("first", schedule="hourly")
    succeeded(first, started=hour_ago, finished=hour_ago, result=result("first"))
    few = queries()
    for number in range(12):
        table = make_table(f"more_{number}", schedule="daily", max_staleness_minutes=60)
        for _ in range(3):
            succeeded(table, started=hour_ago, finished=hour_ago, result=result("more"))
    assert queries() == few


def test_a_snapshot_reads_tables_runs_the_task_queue_and_reconciliations_in_six_queries(
    db, django_assert_num_queries
):
    hour_ago = timezone.now() - timedelta(hours=1)
    for name in ("first", "second"):
        succeeded(
            make_table(name, schedule="hourly"), started=hour_ago, finished=hour_ago, result=result(name)
        )

    # The tables with their latest runs' ids, those runs, the active runs, the last task, the due schedule,
    # the latest reconciliations.
    with django_assert_num_queries(6):
        metrics.read_snapshot(now=timezone.now())


def test_the_collector_is_registered_once_however_often_the_app_is_readied(db):
    collector = metrics.register()
    apps.get_app_config("syncengine").ready()

    assert metrics.register() is collector
    output = generate_latest(REGISTRY).decode()
    assert output.count("# HELP fdm_table_enabled ") == 1
    assert output.count("# HELP fdm_runs_total ") == 1
