"""Fixtures for the metrics tests: tables and runs recorded through the services and the recorder, with known
timestamps, and a scrape of /metrics parsed as Prometheus parses it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_q.models import Schedule, Task
from prometheus_client.parser import text_string_to_metric_families

from syncconfig.models import TableConfig
from syncengine import metrics, recorder, services
from syncengine.choices import RunStatus, RunTrigger
from syncengine.models import SyncRun
from syncengine.pipeline.errors import TransientError, ValidationFailed
from syncengine.pipeline.result import StageMetrics, SyncResult
from syncengine.schedules import REAPER_TASK

# The secret-looking text a failed run carries; /metrics must never show it.
LEAKY_ERROR = "connection to db.internal.example:5432 refused for password=hunter2"


@dataclass
class Scrape:
    """One GET /metrics: the parsed samples, the raw body, and the wall-clock bounds of the request."""

    body: str
    samples: dict[tuple[str, frozenset], float]
    families: dict[str, str]  # family name -> type
    before: float
    after: float

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def has(self, name: str, **labels: str) -> bool:
        return (name, frozenset(labels.items())) in self.samples

    def series(self, name: str) -> dict[frozenset, float]:
        return {labels: value for (sample, labels), value in self.samples.items() if sample == name}

    def age(self, name: str, since: datetime, **labels: str) -> None:
        """Assert that a "seconds since `since`" sample equals the scrape time minus `since`."""
        value = self.value(name, **labels)
        assert self.before - since.timestamp() - 1e-3 <= value <= self.after - since.timestamp() + 1e-3


@pytest.fixture(autouse=True)
def fresh_run_counts() -> None:
    """The registered collector keeps run counts between scrapes; each test's database starts anew."""
    metrics.register().run_counts.reset()


@pytest.fixture
def scrape(client: Client) -> Callable[[], Scrape]:
    def get() -> Scrape:
        before = time.time()
        response = client.get("/metrics")
        after = time.time()
        assert response.status_code == 200
        body = response.content.decode()
        samples: dict[tuple[str, frozenset], float] = {}
        families: dict[str, str] = {}
        for family in text_string_to_metric_families(body):
            families[family.name] = family.type
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                assert key not in samples, f"duplicate sample {key}"
                samples[key] = sample.value
        return Scrape(body=body, samples=samples, families=families, before=before, after=after)

    return get


def make_table(name: str, **overrides) -> TableConfig:
    fields = {
        "name": name,
        "snowflake_database": "PROD_DB",
        "snowflake_schema": "PUBLIC",
        "snowflake_table": name.upper(),
        "postgres_schema": "public",
        "postgres_table": name,
        "schedule": "manual",
    }
    fields.update(overrides)
    return TableConfig.objects.create(**fields)


def set_times(
    run: SyncRun, *, queued: datetime, started: datetime | None, finished: datetime | None
) -> SyncRun:
    SyncRun.objects.filter(pk=run.pk).update(queued_at=queued, started_at=started, finished_at=finished)
    run.refresh_from_db()
    return run


def succeeded(table: TableConfig, *, started: datetime, finished: datetime, result: SyncResult) -> SyncRun:
    run = services.run_create(table=table, trigger=RunTrigger.SCHEDULE)
    assert run.start(executor="worker-7.internal:4242")
    recorder.record_success(run, result)
    return set_times(run, queued=started - timedelta(seconds=1), started=started, finished=finished)


def failed(table: TableConfig, *, started: datetime, finished: datetime, error: Exception) -> SyncRun:
    run = services.run_create(table=table, trigger=RunTrigger.SCHEDULE)
    assert run.start(executor="worker-7.internal:4242")
    recorder.record_failure(run, error)
    return set_times(run, queued=started - timedelta(seconds=1), started=started, finished=finished)


def result(table: str, **counts) -> SyncResult:
    return SyncResult(table=table, mode="full", **counts)


@dataclass
class Scenario:
    """Four tables and a deleted one, with runs in every state (see `scenario` for the story)."""

    anchor: datetime
    orders: TableConfig
    ledger: TableConfig
    prices: TableConfig
    fx_rates: TableConfig
    orders_success: SyncRun
    orders_failure: SyncRun
    fx_success: SyncRun
    fx_failure: SyncRun
    fx_retry: SyncRun
    prices_running: SyncRun
    prices_queued: SyncRun
    task_stopped: datetime
    schedule_due: datetime


@pytest.fixture
def scenario(db) -> Scenario:
    """
    - orders (hourly, limit 120 min): succeeded, failed, succeeded (the counted one), failed, then skipped.
    - ledger (daily, disabled, configured two days ago): never ran.
    - prices (manual): one run running for 20 minutes, and one queued 30 minutes ago that no worker took.
    - fx_rates (every 15 minutes, limit 30 min): succeeded 50 minutes ago, failed transiently 3 minutes ago,
      and its retry waits out its backoff.
    - retired_table: a deleted configuration whose runs (one succeeded, one cancelled) remain in history.
    - The task queue: a worker finished a task 90 s ago; the reaper's schedule is 10 minutes overdue.
    """
    anchor = timezone.now()

    def hours(n: float) -> datetime:
        return anchor - timedelta(hours=n)

    def minutes(n: float) -> datetime:
        return anchor - timedelta(minutes=n)

    orders = make_table("orders", schedule="hourly", max_staleness_minutes=120)
    ledger = make_table("ledger", schedule="daily", enabled=False)
    TableConfig.objects.filter(pk=ledger.pk).update(created_at=anchor - timedelta(days=2))
    ledger.refresh_from_db()
    prices = make_table("prices", schedule="manual")
    fx_rates = make_table("fx_rates", schedule="*/15 * * * *", max_staleness_minutes=30)

    small = result("orders", extract=StageMetrics(rows=10), load=StageMetrics(rows=10), rows_inserted=10)
    succeeded(orders, started=hours(5), finished=hours(5) + timedelta(seconds=30), result=small)
    failed(
        orders,
        started=hours(4),
        finished=hours(4) + timedelta(seconds=5),
        error=ValidationFailed("null primary key", table="orders", column="ORDER_ID"),
    )
    orders_success = succeeded(
        orders,
        started=hours(3),
        finished=hours(3) + timedelta(seconds=60.5),
        result=result(
            "orders",
            extract=StageMetrics(rows=1000, bytes=52_000, seconds=30.25),
            transform=StageMetrics(rows=1000, seconds=5.5),
            load=StageMetrics(rows=1000, bytes=48_000, seconds=12.0),
            publish_seconds=2.75,
            rows_inserted=900,
            rows_updated=100,
            rows_deleted=7,
        ),
    )
    orders_failure = failed(
        orders, started=hours(2), finished=hours(2) + timedelta(seconds=10), error=TransientError(LEAKY_ERROR)
    )
    # The retry of a transient failure would be queued; here the attempt was the last one.
    skipped = services.run_create(table=orders, trigger=RunTrigger.SCHEDULE)
    recorder.record_skip(skipped, "another run holds the table (advisory lock held by pid 4242)")
    set_times(skipped, queued=hours(1), started=None, finished=hours(1))

    prices_queued = set_times(
        services.run_create(table=prices, trigger=RunTrigger.ADMIN),
        queued=minutes(30),
        started=None,
        finished=None,
    )
    prices_running = services.run_create(table=prices, trigger=RunTrigger.COMMAND)
    assert prices_running.start(executor="worker-7.internal:4242")
    set_times(prices_running, queued=minutes(21), started=minutes(20), finished=None)

    fx_success = succeeded(
        fx_rates,
        started=minutes(51),
        finished=minutes(50),
        result=result("fx_rates", extract=StageMetrics(rows=3), load=StageMetrics(rows=3), rows_updated=3),
    )
    fx_failure = failed(
        fx_rates,
        started=minutes(4),
        finished=minutes(3),
        error=TransientError("read timed out", table="fx_rates"),
    )
    fx_retry = services.run_retry(run=fx_failure)
    assert fx_retry is not None and fx_retry.status == RunStatus.QUEUED and fx_retry.not_before > anchor

    for status in (RunStatus.SUCCEEDED, RunStatus.CANCELLED):
        SyncRun.objects.create(
            table=None,
            table_name="retired_table",
            trigger=RunTrigger.SCHEDULE,
            status=status,
            queued_at=hours(30),
            started_at=hours(30),
            finished_at=hours(29),
            rows_extracted=5,
        )

    task_stopped = anchor - timedelta(seconds=90)
    Task.objects.create(
        id=uuid.uuid4().hex,
        name="reaper",
        func=REAPER_TASK,
        started=task_stopped - timedelta(seconds=1),
        stopped=task_stopped,
        success=True,
    )
    schedule_due = anchor - timedelta(minutes=10)
    assert Schedule.objects.filter(func=REAPER_TASK).update(next_run=schedule_due) == 1
    # A spent one-off schedule (repeats 0) is never fired again, however old its next run.
    Schedule.objects.create(
        func=REAPER_TASK, schedule_type=Schedule.ONCE, repeats=0, next_run=anchor - timedelta(days=3)
    )

    return Scenario(
        anchor=anchor,
        orders=orders,
        ledger=ledger,
        prices=prices,
        fx_rates=fx_rates,
        orders_success=orders_success,
        orders_failure=orders_failure,
        fx_success=fx_success,
        fx_failure=fx_failure,
        fx_retry=fx_retry,
        prices_running=prices_running,
        prices_queued=prices_queued,
        task_stopped=task_stopped,
        schedule_due=schedule_due,
    )
