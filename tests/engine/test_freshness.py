"""Freshness is one rule read two ways: `selectors.Freshness` in Python (metrics, the status board's column,
the API) and the `late` state of `selectors.tables_with_state` in SQL (the board's filter and sort, the
dashboard). Both must call the same tables late."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from syncconfig.models import TableConfig
from syncengine import selectors, services
from syncengine.choices import RunStatus, RunTrigger, TableState

pytestmark = pytest.mark.django_db

# (limit in minutes or None, minutes since the last success or, with None, since the table was configured)
CASES = [
    (None, 10_000, None),
    (60, None, 59),
    (60, None, 61),
    (60, 59, None),
    (60, 61, None),
    (5, 60 * 24, None),
    (60 * 24, 30, None),
]


@pytest.mark.parametrize(("limit", "since_success", "since_created"), CASES)
def test_the_late_state_and_freshness_agree(make_table, limit, since_success, since_created):
    now = timezone.now()
    table = make_table(max_staleness_minutes=limit)
    if since_created is not None:
        TableConfig.objects.filter(pk=table.pk).update(created_at=now - timedelta(minutes=since_created))
    else:
        TableConfig.objects.filter(pk=table.pk).update(created_at=now - timedelta(days=30))
        run = services.run_create(table=table, trigger=RunTrigger.SCHEDULE)
        run.start(executor="worker:1")
        run.finish(RunStatus.SUCCEEDED)
        moment = now - timedelta(minutes=since_success)
        type(run).objects.filter(pk=run.pk).update(started_at=moment, finished_at=moment)

    (status,) = selectors.table_statuses(
        tables=TableConfig.objects.filter(pk=table.pk), now=now, with_state=True
    )
    assert (status.state == TableState.LATE) == status.freshness.past_limit
    expected_late = limit is not None and (since_success or since_created) > limit
    assert status.freshness.past_limit == expected_late
