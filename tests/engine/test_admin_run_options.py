"""The table page's "Sync now, allowing deletes" button and backfill form: they enqueue a run carrying the
option, and a range the table cannot take goes back to the page with the reason and queues nothing."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django_q.models import OrmQ

from syncengine.choices import RunStatus, RunTrigger
from syncengine.models import SyncRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    return client


@pytest.fixture
def ledger(make_table):
    table = make_table(sync_mode="incremental", incremental_column="updated_at", primary_key=["TXN_ID"])
    SyncRun.objects.create(
        table=table,
        table_name=table.name,
        trigger=RunTrigger.SCHEDULE,
        status=RunStatus.SUCCEEDED,
        watermark_after={"type": "timestamp_ntz", "value": "2026-01-01T00:10:00.000000"},
    )
    return table


def _sync_url(table) -> str:
    return reverse("admin:syncconfig_tableconfig_sync_now", args=[table.pk])


def test_the_table_page_offers_allowing_deletes_and_a_backfill_form(admin_client, ledger, make_table):
    html = admin_client.get(reverse("admin:syncconfig_tableconfig_change", args=[ledger.pk])).content.decode()
    assert "Sync now, allowing deletes" in html
    assert 'name="backfill_from"' in html and 'name="backfill_to"' in html

    full = make_table()
    html = admin_client.get(reverse("admin:syncconfig_tableconfig_change", args=[full.pk])).content.decode()
    assert "Sync now, allowing deletes" in html
    assert 'name="backfill_from"' not in html  # a full table has no range to backfill


def test_sync_now_allowing_deletes_queues_a_run_that_may_pass_the_guard(
    admin_client, ledger, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(_sync_url(ledger), {"allow_deletes": "1"}, follow=True)

    run = SyncRun.objects.filter(table=ledger).latest("id")
    assert (run.allow_deletes, run.trigger, run.status) == (True, RunTrigger.ADMIN, RunStatus.QUEUED)
    assert "allowing deletes" in response.content.decode()
    assert [item.task["args"] for item in OrmQ.objects.all()] == [(run.pk,)]


def test_the_backfill_form_queues_a_backfill_run(admin_client, ledger, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(_sync_url(ledger), {"backfill_from": "2026-01-01", "backfill_to": ""})

    run = SyncRun.objects.filter(table=ledger).latest("id")
    assert (run.trigger, run.backfill_from, run.backfill_to) == (RunTrigger.BACKFILL, "2026-01-01", "")


def test_a_bad_backfill_value_goes_back_to_the_table_page_and_queues_nothing(admin_client, ledger):
    response = admin_client.post(_sync_url(ledger), {"backfill_from": "not a time"}, follow=True)

    assert response.redirect_chain[-1][0] == reverse("admin:syncconfig_tableconfig_change", args=[ledger.pk])
    assert "Nothing queued" in response.content.decode() and "not a time" in response.content.decode()
    assert SyncRun.objects.filter(table=ledger).count() == 1
    assert OrmQ.objects.count() == 0
