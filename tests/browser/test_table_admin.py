"""The table configuration admin in a real browser: log in, find tables, edit a schedule, see it audited and
exported; a schedule the schema refuses is reported next to its field."""

from __future__ import annotations

import pytest
import yaml
from selenium.webdriver.support.ui import Select

from syncconfig import schema as table_schema
from syncconfig.models import TableConfig
from tests.browser.support import ADMIN_USER

pytestmark = pytest.mark.django_db(transaction=True)  # the live server sees only committed data

CHANGELIST = "/admin/syncconfig/tableconfig/"
DEMO_NAMES = ["accounts", "market_prices", "transactions"]
NEW_SCHEDULE = "30 6 * * 1-5"


def _change_path(name: str) -> str:
    return f"{CHANGELIST}{TableConfig.objects.get(name=name).pk}/change/"


def test_an_admin_finds_a_table_edits_its_schedule_and_sees_the_edit_listed_audited_and_exported(
    browser, superuser, demo_tables
):
    browser.log_in()
    browser.expect_text("Overview", "#content")

    # The list shows the tables imported from config/demo/tables.yaml.
    browser.open(CHANGELIST)
    assert sorted(browser.result_names()) == DEMO_NAMES

    # Filter by sync mode.
    browser.click_and_wait(
        browser.find_xpath("//*[@id='changelist-filter']//a[normalize-space()='Incremental']")
    )
    assert "sync_mode__exact=incremental" in browser.path()
    assert sorted(browser.result_names()) == ["market_prices", "transactions"]
    browser.click_and_wait(browser.find_xpath("//*[@id='changelist-filter']//a[normalize-space()='Full']"))
    assert browser.result_names() == ["accounts"]

    # Search (the notes are searched too: only market_prices mentions closing prices).
    browser.open(CHANGELIST)
    browser.fill("#searchbar", "closing")
    browser.click_and_wait(browser.find("#changelist-search input[type=submit]"))
    assert browser.result_names() == ["market_prices"]

    # Open a table from the list, change its schedule, save.
    browser.open(CHANGELIST)
    browser.click_and_wait(
        browser.find_xpath("//table[@id='result_list']//th/a[normalize-space()='accounts']")
    )
    assert browser.find("#id_schedule").get_attribute("value") == "daily"
    browser.fill("#id_schedule", NEW_SCHEDULE)
    browser.click_and_wait(browser.find("input[name=_save]"))

    assert browser.path().startswith(CHANGELIST)
    browser.expect_text("was changed successfully", ".messagelist")
    row = browser.find_xpath("//table[@id='result_list']//tr[th[normalize-space()='accounts']]")
    assert row.find_element("css selector", "td.field-schedule").text == NEW_SCHEDULE
    assert TableConfig.objects.get(name="accounts").schedule == NEW_SCHEDULE

    # The table's History page lists the change, with who made it.
    browser.open(_change_path("accounts"))
    browser.click_and_wait(
        browser.find_xpath("//ul[contains(@class,'object-tools')]//a[normalize-space()='History']")
    )
    newest = browser.find("#change-history tbody tr")
    cells = [cell.text for cell in newest.find_elements("css selector", "td")]
    assert cells[2:5] == ["Changed", ADMIN_USER, "admin edit"], cells
    assert " ".join(cells[5].split()) == f"Schedule: daily → {NEW_SCHEDULE}", cells

    # "Export selected as YAML" downloads the selected table with the edit.
    browser.open(CHANGELIST)
    pk = TableConfig.objects.get(name="accounts").pk
    browser.find(f"input.action-select[value='{pk}']").click()
    Select(browser.find("select[name=action]")).select_by_visible_text("Export selected as YAML")
    exported = browser.download(lambda: browser.find("button[name=index]").click(), "tables.yaml")
    tables = yaml.safe_load(exported)["tables"]
    assert [(t["name"], t["schedule"]) for t in tables] == [("accounts", NEW_SCHEDULE)], exported

    # "Export all as YAML" downloads every table, the edit included.
    exported = browser.download(
        lambda: browser.find_xpath("//a[normalize-space()='Export all as YAML']").click(), "tables.yaml"
    )
    schedules = {t["name"]: t["schedule"] for t in yaml.safe_load(exported)["tables"]}
    assert schedules == {"accounts": NEW_SCHEDULE, "market_prices": "*/15 * * * *", "transactions": "hourly"}


def test_an_invalid_cron_expression_is_refused_next_to_the_schedule_field_and_changes_nothing(
    browser, superuser, demo_tables
):
    table = TableConfig.objects.get(name="accounts")
    history_before = table.history.count()
    updated_before = table.updated_at
    invalid = "61 * * * *"
    expected_message = table_schema.schedule_problem(invalid)
    assert expected_message  # the schema refuses it

    browser.log_in()
    browser.open(_change_path("accounts"))
    browser.fill("#id_schedule", invalid)
    browser.click_and_wait(browser.find("input[name=_save]"))

    browser.expect_text("Please correct the error below.", ".errornote")
    field_errors = [item.text for item in browser.find_all(".field-schedule .errorlist li")]
    assert field_errors == [expected_message]
    assert browser.find("#id_schedule").get_attribute("value") == invalid  # kept for correction
    other_errors = browser.find_all(".errorlist:not(.field-schedule .errorlist)")
    assert [e.text for e in other_errors if e.text] == [], "only the schedule is reported"

    table.refresh_from_db()
    assert (table.schedule, table.updated_at, table.history.count()) == (
        "daily",
        updated_before,
        history_before,
    )
    browser.open(CHANGELIST)
    row = browser.find_xpath("//table[@id='result_list']//tr[th[normalize-space()='accounts']]")
    assert row.find_element("css selector", "td.field-schedule").text == "daily"
