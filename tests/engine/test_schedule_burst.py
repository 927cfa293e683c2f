"""200 tables due in the same minute, two worker clusters: every table gets exactly one run, and it succeeds."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db.models import Count
from django.utils import timezone
from django_q.models import Schedule

from syncengine.choices import RunStatus, RunTrigger
from syncengine.models import SyncRun
from syncengine.schedules import SCHEDULED_SYNC_TASK

pytestmark = [pytest.mark.slow, pytest.mark.stack, pytest.mark.load, pytest.mark.django_db(transaction=True)]

TABLES = 200
# Two clusters' schedulers look for due schedules every 30 seconds; 200 small syncs then share the workers.
TIMEOUT_SECONDS = 900


def test_200_tables_due_at_once_run_once_each_through_two_clusters(qcluster, make_table, seed_source):
    tables = [make_table(name=f"burst_{i:03d}", schedule="hourly") for i in range(TABLES)]
    for table in tables:
        seed_source(table.snowflake_table, rows=5)
    due = timezone.now() - timedelta(seconds=1)
    assert Schedule.objects.filter(func=SCHEDULED_SYNC_TASK).update(next_run=due) == TABLES

    began = time.monotonic()
    with qcluster() as first, qcluster() as second:
        first.wait_for(
            lambda: (
                SyncRun.objects.filter(status__in=RunStatus.terminal()).count() >= TABLES
                and second.process.poll() is None
            ),
            timeout=TIMEOUT_SECONDS,
            what=f"{TABLES} finished runs",
        )
        time.sleep(35)  # one more scheduler pass of each cluster: nothing fires twice
    elapsed = time.monotonic() - began

    per_table = dict(SyncRun.objects.values_list("table_id").annotate(n=Count("id")))
    assert {table.pk: per_table.get(table.pk, 0) for table in tables} == {table.pk: 1 for table in tables}
    outcomes = dict(SyncRun.objects.values_list("status").annotate(n=Count("id")))
    assert outcomes == {RunStatus.SUCCEEDED: TABLES}, f"{outcomes} after {elapsed:.0f} s"
    assert set(SyncRun.objects.values_list("trigger", "attempt")) == {(RunTrigger.SCHEDULE, 1)}
    executors = set(SyncRun.objects.values_list("executor", flat=True))
    assert len(executors) >= 2, f"one worker ran every run: {executors}"
    assert Schedule.objects.filter(func=SCHEDULED_SYNC_TASK, next_run__lte=timezone.now()).count() == 0
    print(f"\n{TABLES} due tables, two clusters: all {TABLES} runs finished within {elapsed:.0f} s")
