"""The admin's reconciliation buttons and action only enqueue; reconciliations read back read-only; a run whose
light check found a mismatch flags its table on the status board."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django_q.models import OrmQ

from syncengine import services
from syncengine.choices import RunCheckStatus, RunStatus, RunTrigger
from syncengine.models import Reconciliation

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "x")
    client.force_login(user)
    return client


def test_the_reconcile_buttons_enqueue_and_show_the_reconciliation(
    admin_client, make_table, django_capture_on_commit_callbacks
):
    table = make_table()
    page = admin_client.get(reverse("admin:syncconfig_tableconfig_change", args=[table.pk])).content.decode()
    url = reverse("admin:syncconfig_tableconfig_reconcile", args=[table.pk])
    assert url in page and "Deep reconcile" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {"deep": "1"}, follow=True)

    reconciliation = Reconciliation.objects.get(table=table)
    assert (reconciliation.deep, reconciliation.trigger, reconciliation.status) == (True, "admin", "queued")
    assert response.redirect_chain[-1][0] == reverse(
        "admin:syncengine_reconciliation_change", args=[reconciliation.pk]
    )
    assert [item.task["args"] for item in OrmQ.objects.all()] == [(reconciliation.pk,)]
    assert admin_client.get(url).status_code == 405
    assert admin_client.get(reverse("admin:syncengine_reconciliation_changelist")).status_code == 200


def test_a_reconciliation_page_shows_its_differing_keys_read_only(admin_client, make_table):
    table = make_table()
    reconciliation = Reconciliation.objects.create(
        table=table,
        table_name=table.name,
        trigger="api",
        deep=True,
        status="different",
        differences_found=1,
        differences=[{"key": ["9"], "kind": "changed", "columns": ["amount"]}],
        details={"key": ["txn_id"]},
    )
    page = admin_client.get(reverse("admin:syncengine_reconciliation_change", args=[reconciliation.pk]))

    html = page.content.decode()
    assert page.status_code == 200
    assert "txn_id=9: changed amount" in html
    assert 'name="_save"' not in html  # read-only


def test_the_reconcile_action_enqueues_one_deep_reconciliation_per_table(
    admin_client, make_table, django_capture_on_commit_callbacks
):
    first, second = make_table(), make_table()
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("admin:syncconfig_tableconfig_changelist"),
            {"action": "reconcile_now", "_selected_action": [first.pk, second.pk]},
        )
    assert Reconciliation.objects.filter(deep=True, trigger="admin").count() == 2
    assert OrmQ.objects.count() == 2


def test_a_mismatched_light_check_flags_the_table_on_the_status_board(admin_client, make_table):
    table = make_table()
    run = services.run_create(table=table, trigger=RunTrigger.SCHEDULE)
    run.reconciliation_status = RunCheckStatus.MISMATCH
    run.finish(RunStatus.SUCCEEDED)

    board = admin_client.get(reverse("admin:syncconfig_tableconfig_changelist")).content.decode()

    assert "copy differs from source" in board
