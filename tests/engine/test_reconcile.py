"""`manage.py reconcile` (exit 0 equal, 1 different with each key printed, 2 unknown table), the recorded
reconciliation, and the light check stored on a run."""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from fdm.notifications.models import Incident
from syncengine import reconciliations, services
from syncengine.choices import ReconciliationStatus, RunCheckStatus, RunStatus, RunTrigger
from syncengine.models import Reconciliation, SyncRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def orders(make_table, seed_source):
    table = make_table(primary_key=["TXN_ID"])
    source = seed_source(table.snowflake_table, rows=30)
    run = services.run_create(table=table, trigger=RunTrigger.COMMAND)
    services.run_execute(run_id=run.pk, retry_transient=False)
    table.source_name = source
    return table


def test_a_run_stores_its_light_check(orders):
    run = SyncRun.objects.get(table=orders)
    assert run.status == RunStatus.SUCCEEDED
    assert run.reconciliation_status == RunCheckStatus.EQUAL
    assert run.checks["reconciliation"]["rows"] == {"source": 30, "target": 30}


def test_an_equal_table_exits_0(orders):
    out = StringIO()
    call_command("reconcile", orders.name, "--deep", stdout=out)

    reconciliation = Reconciliation.objects.get(table=orders)
    assert (reconciliation.status, reconciliation.trigger, reconciliation.deep) == (
        ReconciliationStatus.EQUAL,
        RunTrigger.COMMAND,
        True,
    )
    assert reconciliation.rows_compared == 30 and reconciliation.segments_checked > 0
    assert "equal" in out.getvalue() and "0 differences" in out.getvalue()


def test_differences_exit_1_and_print_each_key_with_its_columns(orders, snowflake, target):
    snowflake.execute(f"DELETE FROM {orders.source_name} WHERE TXN_ID = 4")
    snowflake.execute(f"UPDATE {orders.source_name} SET CURRENCY = 'USD' WHERE TXN_ID = 9")
    target(f"UPDATE public.{orders.postgres_table} SET amount = 0 WHERE txn_id = 20 RETURNING txn_id")
    out = StringIO()

    with pytest.raises(SystemExit) as exited:
        call_command("reconcile", orders.name, "--deep", "--limit", "2", stdout=out)

    assert exited.value.code == 1
    text = out.getvalue()
    assert "txn_id=4: missing_in_source" in text
    assert "txn_id=9: changed (currency)" in text
    assert "txn_id=20" not in text and "... and 1 more" in text  # --limit 2
    reconciliation = Reconciliation.objects.get(table=orders)
    assert reconciliation.status == ReconciliationStatus.DIFFERENT and reconciliation.differences_found == 3
    assert {"key": ["20"], "kind": "changed", "columns": ["amount"]} in reconciliation.differences

    incident = Incident.objects.get(kind="reconcile_mismatch", key=orders.name, status="open")
    assert "3 differences" in incident.title and "4" in incident.detail

    with pytest.raises(SystemExit) as light:
        call_command("reconcile", orders.name, stdout=StringIO())
    assert light.value.code == 1  # counts (29 vs 30) and the amount sum differ

    services.run_execute(
        run_id=services.run_create(table=orders, trigger=RunTrigger.COMMAND, full_refresh=True).pk,
        retry_transient=False,
    )
    call_command("reconcile", orders.name, "--deep", stdout=StringIO())  # equal again: exits 0
    incident.refresh_from_db()
    assert incident.status == "resolved"


def test_an_unknown_table_exits_2(db):
    with pytest.raises(CommandError) as raised:
        call_command("reconcile", "no_such_table", stdout=StringIO())
    assert raised.value.returncode == 2


def test_a_reconciliation_of_a_table_never_synced_fails_with_the_reason(make_table, seed_source):
    table = make_table(primary_key=["TXN_ID"])
    seed_source(table.snowflake_table, rows=3)
    created = reconciliations.reconciliation_create(table=table, trigger=RunTrigger.API, deep=True)

    done = reconciliations.reconciliation_execute(reconciliation_id=created.pk)

    assert done.status == ReconciliationStatus.FAILED
    assert "has not been synced" in done.error_message
