"""/metrics reports each table's latest reconciliation and the light check of its latest successful run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from syncengine import metrics, reconciliations, services
from syncengine.choices import ReconciliationStatus, RunCheckStatus, RunStatus, RunTrigger
from syncengine.models import Reconciliation
from tests.monitoring.conftest import make_table

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_run_counts() -> None:
    metrics.register().run_counts.reset()


def _finished(table, *, status: str, differences: int, seconds: float, deep: bool = True) -> Reconciliation:
    reconciliation = reconciliations.reconciliation_create(table=table, trigger=RunTrigger.API, deep=deep)
    now = timezone.now()
    Reconciliation.objects.filter(pk=reconciliation.pk).update(
        status=status,
        started_at=now - timedelta(seconds=seconds),
        finished_at=now,
        differences_found=differences,
    )
    return reconciliation


def test_the_latest_reconciliation_and_the_runs_light_check_are_reported(scrape):
    orders, ledger = make_table("orders"), make_table("ledger")
    _finished(orders, status=ReconciliationStatus.EQUAL, differences=0, seconds=5)
    _finished(orders, status=ReconciliationStatus.DIFFERENT, differences=7, seconds=12)
    run = services.run_create(table=ledger, trigger=RunTrigger.SCHEDULE)
    run.reconciliation_status = RunCheckStatus.MISMATCH
    run.finish(RunStatus.SUCCEEDED)

    s = scrape()

    assert s.value("fdm_reconciliation_last_status", table="orders", status="different") == 1
    assert s.value("fdm_reconciliation_last_status", table="orders", status="equal") == 0
    assert s.value("fdm_reconciliation_last_differences", table="orders") == 7
    assert s.value("fdm_reconciliation_last_duration_seconds", table="orders", deep="true") == pytest.approx(
        12
    )
    assert not s.has("fdm_reconciliation_last_differences", table="ledger")
    assert s.value("fdm_reconciliation_run_check_mismatch", table="ledger") == 1
