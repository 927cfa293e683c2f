"""The admin's YAML import page in a real browser: upload, dry-run preview, confirm."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from syncconfig import schema as table_schema
from syncconfig.models import TableConfig
from tests.browser.support import ADMIN_USER, save_page

pytestmark = pytest.mark.django_db(transaction=True)  # the live server sees only committed data

CHANGELIST = "/admin/syncconfig/tableconfig/"

ACCOUNTS_HOURLY = {
    "name": "accounts",
    "snowflake": {"database": "DEMO_DB", "schema": "PUBLIC", "table": "ACCOUNTS"},
    "postgres": {"schema": "finance", "table": "accounts"},
    "sync_mode": "full",
    "schedule": "hourly",  # the demo file says daily
    "encryption": {"columns": ["ACCOUNT_NUMBER", "HOLDER_NAME"], "searchable": ["ACCOUNT_NUMBER"]},
    "compression": False,
    "notes": "Customer accounts; small, reloaded in full every night. IBAN and holder encrypted at rest.",
}
LEDGER = {
    "name": "ledger",
    "snowflake": {"database": "DEMO_DB", "schema": "PUBLIC", "table": "LEDGER"},
    "postgres": {"schema": "finance", "table": "ledger"},
    "sync_mode": "incremental",
    "incremental_column": "updated_at",
    "schedule": "0 2 * * *",
}
BROKEN_SCHEDULE = "every morning"
BROKEN = {
    "name": "broken",
    "snowflake": {"database": "DEMO_DB", "schema": "PUBLIC", "table": "BROKEN"},
    "postgres": {"schema": "finance", "table": "broken"},
    "sync_mode": "sometimes",
    "schedule": BROKEN_SCHEDULE,
}


def _write(tmp_path: Path, name: str, tables: list[dict]) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"tables": tables}, sort_keys=False), encoding="utf-8")
    return str(path)


def _stored() -> dict[str, tuple[str, int]]:
    """Each stored table's schedule and number of history records."""
    return {table.name: (table.schedule, table.history.count()) for table in TableConfig.objects.all()}


def _preview(browser, path: str) -> None:
    browser.open(CHANGELIST)
    browser.click_and_wait(
        browser.find_xpath("//ul[contains(@class,'object-tools')]//a[normalize-space()='Import YAML']")
    )
    browser.find("#id_file").send_keys(path)
    browser.click_and_wait(browser.find("input[type=submit][value='Preview import']"))


def test_an_upload_with_one_bad_table_lists_its_problems_by_table_and_key_and_changes_nothing(
    browser, superuser, demo_tables, tmp_path
):
    before = _stored()
    upload = _write(tmp_path, "with-a-bad-table.yaml", [ACCOUNTS_HOURLY, LEDGER, BROKEN])

    browser.log_in()
    _preview(browser, upload)

    browser.expect_text("Preview of with-a-bad-table.yaml", "#content-main")
    browser.expect_text("2 problems found; nothing will be changed.", ".errornote")
    rows = [
        [cell.text for cell in row.find_elements("css selector", "td")]
        for row in browser.find_all("#import-errors tbody tr")
    ]
    problems = {(table, key): message for table, key, message in rows}
    assert set(problems) == {("tables[2] broken", "sync_mode"), ("tables[2] broken", "schedule")}, rows
    assert problems[("tables[2] broken", "schedule")] == table_schema.schedule_problem(BROKEN_SCHEDULE)
    assert "sometimes" in problems[("tables[2] broken", "sync_mode")]
    assert not browser.find_all("input[name=confirm]"), "a document with problems cannot be confirmed"

    assert _stored() == before


def test_a_valid_upload_previews_what_it_creates_and_updates_and_confirming_applies_it(
    browser, superuser, demo_tables, tmp_path
):
    before = _stored()
    upload = _write(tmp_path, "good.yaml", [ACCOUNTS_HOURLY, LEDGER])

    browser.log_in()
    _preview(browser, upload)

    # The dry run: what would change, and nothing changed yet.
    browser.expect_text("Preview of good.yaml", "#content-main")
    created = [row.text for row in browser.find_all("#import-plan tr.import-created")]
    updated = [
        [cell.text for cell in row.find_elements("css selector", "td")]
        for row in browser.find_all("#import-plan tr.import-updated")
    ]
    assert created == ["create ledger"]
    assert updated == [["update", "accounts", 'schedule: "daily" -> "hourly"']]
    assert not browser.find_all("#import-plan tr.import-deleted")  # tables the file omits are left alone
    browser.expect_text("1 to create, 1 to update, 0 to delete, 0 unchanged.", "#content-main")
    assert _stored() == before

    browser.click_and_wait(browser.find("input[name=confirm]"))

    assert browser.path().startswith(CHANGELIST)
    assert browser.find_all(".messagelist .success"), browser.text(".messagelist")
    assert sorted(browser.result_names()) == ["accounts", "ledger", "market_prices", "transactions"]
    schedules = {
        row.find_element("css selector", "th.field-name").text: row.find_element(
            "css selector", "td.field-schedule"
        ).text
        for row in browser.find_all("#result_list tbody tr")
    }
    assert schedules["accounts"] == "hourly" and schedules["ledger"] == "0 2 * * *"

    after = _stored()
    assert after["accounts"] == ("hourly", before["accounts"][1] + 1)
    assert after["market_prices"] == before["market_prices"]
    assert after["transactions"] == before["transactions"]
    change = TableConfig.objects.get(name="accounts").history.first()
    assert change.history_user.username == ADMIN_USER
    assert "admin import" in change.history_change_reason


def test_pasted_yaml_with_a_slip_shows_the_line_with_a_caret_under_it(browser, superuser, demo_tables):
    before = _stored()
    browser.log_in()
    browser.open(CHANGELIST + "import/")

    browser.fill("#id_text", "tables:\n  - name: ledger\n    sync_mode incremental\n")
    browser.click_and_wait(browser.find("input[type=submit][value='Preview import']"))

    browser.expect_text("1 problem found; nothing will be changed.", ".errornote")
    assert browser.text("#import-errors pre.fdm-excerpt") == (
        "2 |   - name: ledger\n3 |     sync_mode incremental\n  |     ^ here"
    )
    assert (
        browser.find("#id_text").get_attribute("value").startswith("tables:\n  - name: ledger")
    )  # kept to fix
    save_page(browser, "import-error-excerpt")
    assert _stored() == before
