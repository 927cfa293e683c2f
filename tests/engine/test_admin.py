"""The run admin is read-only; the table admin gains latest runs, "Sync now" and "Full refresh"."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ

from syncengine import services
from syncengine.admin import INLINE_RUN_LIMIT
from syncengine.choices import RunStatus, RunTrigger
from syncengine.models import SyncRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser():
    return get_user_model().objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def viewer(client):
    """A staff member who may look at runs and tables but not start or cancel anything."""
    user = get_user_model().objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(codename__in=["view_syncrun", "view_tableconfig", "change_tableconfig"])
    )
    client.force_login(user)
    return client


@pytest.fixture
def finished_run(make_table):
    table = make_table()
    run = services.run_create(table=table, trigger=RunTrigger.SCHEDULE)
    run.start(executor="worker:7")
    run.rows_extracted, run.rows_inserted, run.rows_updated = 1200, 1000, 200
    run.extract_seconds, run.load_seconds, run.publish_seconds = 1.5, 0.75, 0.1
    run.watermark_before = {"column": "updated_at", "value": "2026-01-01T00:00:00"}
    run.watermark_after = {"column": "updated_at", "value": "2026-01-02T08:30:00"}
    run.drift = ["new column NOTE added to the target as text"]
    run.checks = {"row_count_matches": True}
    run.append_log("info", "extracted batch", rows=1200)
    run.finish(RunStatus.SUCCEEDED)
    return run


def test_runs_can_be_viewed_but_not_added_changed_or_deleted(admin_client, finished_run):
    changelist = admin_client.get(reverse("admin:syncengine_syncrun_changelist"))
    assert changelist.status_code == 200
    assert finished_run.table_name in changelist.content.decode()

    assert admin_client.get(reverse("admin:syncengine_syncrun_add")).status_code == 403
    change_url = reverse("admin:syncengine_syncrun_change", args=[finished_run.pk])
    assert admin_client.post(change_url, {"status": "failed"}).status_code == 403
    delete_url = reverse("admin:syncengine_syncrun_delete", args=[finished_run.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    finished_run.refresh_from_db()
    assert finished_run.status == RunStatus.SUCCEEDED

    actions = changelist.context["action_form"].fields["action"].choices
    assert "delete_selected" not in [name for name, _ in actions]


def test_the_run_page_reads_as_a_report(admin_client, finished_run):
    page = admin_client.get(reverse("admin:syncengine_syncrun_change", args=[finished_run.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    for expected in (
        "Loaded 1,200 rows in ",  # the summary line first
        "(1,000 new, 200 updated)",
        "1.50 s",
        "2026-01-02 08:30:00",  # the watermark, readable
        "new column NOTE added to the target as text",
        "Row count matches",  # checks in words, not JSON
        "extracted batch",
        "rows=1200",
    ):
        assert expected in html, expected
    assert html.index('id="fdm-summary"') < html.index("field-table_link")
    assert 'name="_save"' not in html
    assert "Cancel run" not in html  # finished runs cannot be cancelled
    assert "run_live.js" not in html  # nothing to follow
    started = timezone.localtime(SyncRun.objects.get(pk=finished_run.pk).started_at)
    assert f"{started:%Y-%m-%d %H:%M:%S}" in html  # times to the second
    cancel_requested = html.split("field-cancel_requested_display")[1]
    assert re.search(r'<div class="readonly">no</div>', cancel_requested)  # words, not a red cross


def test_a_failed_runs_page_states_the_error_and_keeps_the_traceback_behind_an_expander(
    admin_client, make_table
):
    run = services.run_create(table=make_table(), trigger=RunTrigger.SCHEDULE)
    run.start(executor="worker:1")
    try:
        raise ValueError("column AMOUNT overflows numeric(10,2)\nsecond line of detail")
    except ValueError as exc:
        run.finish(RunStatus.FAILED, exc)

    html = admin_client.get(reverse("admin:syncengine_syncrun_change", args=[run.pk])).content.decode()

    assert "Failed after " in html and "Column AMOUNT overflows numeric(10,2)." in html
    details = html.split('<details class="fdm-traceback">')[1].split("</details>")[0]
    assert "second line of detail" in details and "Traceback (most recent call last)" in details


def test_a_running_runs_page_polls_its_live_state(admin_client, make_table):
    run = services.run_create(table=make_table(), trigger=RunTrigger.ADMIN)
    page = admin_client.get(reverse("admin:syncengine_syncrun_change", args=[run.pk])).content.decode()
    live_url = reverse("admin:syncengine_syncrun_live", args=[run.pk])
    assert f'data-url="{live_url}"' in page and "syncengine/run_live.js" in page and "Cancel run" in page

    queued = admin_client.get(live_url).json()
    assert (queued["status"], queued["terminal"]) == ("queued", False)
    shown = queued["log_count"]

    run.start(executor="worker:1")
    run.append_log("info", "extracting")
    SyncRun.objects.filter(pk=run.pk).update(stage="extract", progress_rows=1500)
    running = admin_client.get(live_url, {"after": shown}).json()
    assert (running["status"], running["stage"], running["rows"]) == ("running", "extract", "1,500")
    assert [entry["message"] for entry in running["log"]] == ["started", "extracting"][-len(running["log"]) :]
    assert running["log"][-1]["message"] == "extracting"

    run.refresh_from_db()
    run.finish(RunStatus.SUCCEEDED)
    ended = admin_client.get(live_url, {"after": running["log_count"]}).json()
    assert ended["terminal"] is True and ended["log"] == []


def test_the_changelist_filters_by_table_status_and_trigger(admin_client, make_table, finished_run):
    other = services.run_create(table=make_table(), trigger=RunTrigger.ADMIN)
    url = reverse("admin:syncengine_syncrun_changelist")
    by_status = admin_client.get(url, {"status__exact": "queued"})
    assert [run.pk for run in by_status.context["cl"].result_list] == [other.pk]
    by_trigger = admin_client.get(url, {"trigger__exact": "schedule"})
    assert [run.pk for run in by_trigger.context["cl"].result_list] == [finished_run.pk]
    by_search = admin_client.get(url, {"q": finished_run.table_name})
    assert [run.pk for run in by_search.context["cl"].result_list] == [finished_run.pk]


def test_cancel_action_and_button(admin_client, make_table):
    table = make_table()
    queued = services.run_create(table=table, trigger=RunTrigger.ADMIN)
    running = services.run_create(table=table, trigger=RunTrigger.ADMIN)
    running.start()

    page = admin_client.get(reverse("admin:syncengine_syncrun_change", args=[running.pk]))
    assert "Cancel run" in page.content.decode()

    admin_client.post(
        reverse("admin:syncengine_syncrun_changelist"),
        {"action": "cancel_runs", "_selected_action": [queued.pk]},
    )
    assert SyncRun.objects.get(pk=queued.pk).status == RunStatus.CANCELLED

    response = admin_client.post(reverse("admin:syncengine_syncrun_cancel", args=[running.pk]))
    assert response.status_code == 302
    running.refresh_from_db()
    assert (running.status, running.cancel_requested) == (RunStatus.RUNNING, True)
    assert admin_client.get(reverse("admin:syncengine_syncrun_cancel", args=[running.pk])).status_code == 405


def test_a_viewer_cannot_cancel_or_sync(viewer, make_table):
    table = make_table()
    run = services.run_create(table=table, trigger=RunTrigger.ADMIN)
    assert viewer.post(reverse("admin:syncengine_syncrun_cancel", args=[run.pk])).status_code == 403
    assert viewer.post(reverse("admin:syncconfig_tableconfig_sync_now", args=[table.pk])).status_code == 403
    page = viewer.get(reverse("admin:syncconfig_tableconfig_change", args=[table.pk]))
    assert "Sync now" not in page.content.decode()
    assert SyncRun.objects.filter(table=table).count() == 1


def test_sync_now_button_enqueues_and_shows_the_run(
    admin_client, superuser, make_table, django_capture_on_commit_callbacks
):
    table = make_table()
    page = admin_client.get(reverse("admin:syncconfig_tableconfig_change", args=[table.pk]))
    html = page.content.decode()
    sync_url = reverse("admin:syncconfig_tableconfig_sync_now", args=[table.pk])
    assert "Sync now" in html and sync_url in html and "Full refresh" in html

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(sync_url, follow=True)
    run = SyncRun.objects.get(table=table)
    assert (run.trigger, run.requested_by, run.full_refresh, run.status) == (
        "admin",
        superuser,
        False,
        "queued",
    )
    assert response.redirect_chain[-1][0] == reverse("admin:syncengine_syncrun_change", args=[run.pk])
    assert f"queued as run #{run.pk}" in response.content.decode()
    assert [item.task["args"] for item in OrmQ.objects.all()] == [(run.pk,)]

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(sync_url, {"full_refresh": "1"})
    assert SyncRun.objects.filter(table=table, full_refresh=True).count() == 1
    assert admin_client.get(sync_url).status_code == 405


def test_a_finished_run_page_offers_to_sync_its_table_again_to_those_who_may(viewer, superuser, make_table):
    admin_client = Client()  # `viewer` logs the shared client in as the viewer
    admin_client.force_login(superuser)
    table = make_table()
    run = services.run_create(table=table, trigger=RunTrigger.ADMIN)
    run.start(executor="worker:1")
    run.finish(RunStatus.FAILED, "boom")
    page_url = reverse("admin:syncengine_syncrun_change", args=[run.pk])
    sync_url = reverse("admin:syncconfig_tableconfig_sync_now", args=[table.pk])

    assert sync_url in admin_client.get(page_url).content.decode()
    assert sync_url not in viewer.get(page_url).content.decode()
    table.delete()  # a run of a deleted table has nothing to sync
    assert "fdm-sync-again" not in admin_client.get(page_url).content.decode()


def test_sync_now_action_enqueues_one_run_per_table(
    admin_client, make_table, django_capture_on_commit_callbacks
):
    first, second = make_table(), make_table()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:syncconfig_tableconfig_changelist"),
            {"action": "sync_now", "_selected_action": [first.pk]},
        )
    run = SyncRun.objects.get(table=first)
    assert response["Location"] == reverse("admin:syncengine_syncrun_change", args=[run.pk])

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("admin:syncconfig_tableconfig_changelist"),
            {"action": "sync_now", "_selected_action": [first.pk, second.pk]},
        )
    assert SyncRun.objects.filter(table=first).count() == 2
    assert SyncRun.objects.filter(table=second, trigger="admin").count() == 1
    assert OrmQ.objects.count() == 3


def test_the_table_page_lists_its_latest_runs(admin_client, make_table):
    table = make_table()
    runs = [
        services.run_create(table=table, trigger=RunTrigger.SCHEDULE) for _ in range(INLINE_RUN_LIMIT + 2)
    ]
    page = admin_client.get(reverse("admin:syncconfig_tableconfig_change", args=[table.pk]))
    html = page.content.decode()
    newest, oldest = runs[-1], runs[0]
    assert reverse("admin:syncengine_syncrun_change", args=[newest.pk]) in html
    assert reverse("admin:syncengine_syncrun_change", args=[oldest.pk]) not in html
    formset = next(f for f in page.context["inline_admin_formsets"] if f.opts.model is SyncRun)
    assert len(formset.formset.forms) == INLINE_RUN_LIMIT


def test_the_table_can_still_be_saved_with_its_runs_shown(admin_client, make_table):
    table = make_table()
    for _ in range(INLINE_RUN_LIMIT):
        services.run_create(table=table, trigger=RunTrigger.SCHEDULE)
    url = reverse("admin:syncconfig_tableconfig_change", args=[table.pk])
    page = admin_client.get(url)
    data = _form_data(page)
    # A run started after the page was shown pushes the oldest shown run out of the latest ones.
    services.run_create(table=table, trigger=RunTrigger.ADMIN)
    data["notes"] = "reviewed"
    response = admin_client.post(url, data)
    assert response.status_code == 302, _errors(response)
    table.refresh_from_db()
    assert table.notes == "reviewed"


def _form_data(page) -> dict:
    """What a browser would post back: the main form's values and every inline's management form."""
    data: dict = {}
    form = page.context["adminform"].form
    for name, field in form.fields.items():
        if field.disabled:
            continue
        value = form[name].value()
        if isinstance(value, bool):
            if value:
                data[name] = "on"
            continue
        data[name] = (
            ""
            if value is None
            else field.widget.format_value(value)
            if hasattr(field.widget, "format_value")
            else value
        )
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        for name in management.fields:
            data[f"{formset.prefix}-{name}"] = management[name].value()
        for index, inline_form in enumerate(formset.forms):
            data[f"{formset.prefix}-{index}-id"] = inline_form.instance.pk
            data[f"{formset.prefix}-{index}-{formset.fk.name}"] = formset.instance.pk
    return {key: value for key, value in data.items() if value is not None}


def _errors(response) -> str:
    context = response.context
    if not context:
        return response.content.decode()[:500]
    errors = [context["adminform"].form.errors]
    errors += [inline.formset.errors for inline in context["inline_admin_formsets"]]
    return repr(errors)


def test_the_table_list_is_a_status_board(admin_client, make_table, finished_run):
    synced = finished_run.table
    SyncRun.objects.filter(pk=finished_run.pk).update(finished_at=timezone.now() - timedelta(hours=2))
    failing = make_table()
    services.run_create(table=failing, trigger=RunTrigger.SCHEDULE).finish(RunStatus.FAILED, message="boom")
    never = make_table()

    response = admin_client.get(reverse("admin:syncconfig_tableconfig_changelist"))

    rows = {
        table.name: row
        for row in response.content.decode().split("<tr")
        for table in (synced, failing, never)
        if f">{table.name}</a>" in row
    }
    assert "Healthy" in rows[synced.name] and "2\xa0hours ago" in rows[synced.name]
    assert "1,200 rows" in rows[synced.name]
    assert f'href="{reverse("admin:syncengine_syncrun_change", args=[finished_run.pk])}"' in rows[synced.name]
    assert "Failing" in rows[failing.name] and "never synced" in rows[failing.name]
    assert "Never run" in rows[never.name] and "never synced" in rows[never.name]


def test_the_status_board_filters_and_sorts_by_state(admin_client, make_table, finished_run):
    failing = make_table()
    services.run_create(table=failing, trigger=RunTrigger.SCHEDULE).finish(RunStatus.FAILED, message="boom")
    make_table()  # never run
    url = reverse("admin:syncconfig_tableconfig_changelist")

    only_failing = admin_client.get(url, {"state": "failing"})
    assert [table.name for table in only_failing.context["cl"].result_list] == [failing.name]

    by_state = admin_client.get(url, {"o": "1"})  # the first column: status, what needs a person first
    assert [table.state for table in by_state.context["cl"].result_list] == ["failing", "never", "healthy"]


def test_the_status_board_reads_a_fixed_number_of_queries(admin_client, make_table, finished_run):
    url = reverse("admin:syncconfig_tableconfig_changelist")
    admin_client.get(url)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    for _ in range(5):
        table = make_table()
        services.run_create(table=table, trigger=RunTrigger.SCHEDULE).finish(RunStatus.FAILED, message="x")
    with CaptureQueriesContext(connection) as many:
        admin_client.get(url)
    assert len(few) == len(many)
