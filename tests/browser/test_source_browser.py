"""The source browser in a real browser: from a new table's page, through Snowflake's (the emulator's)
databases, schemas and tables, to a table's columns; the choices ticked there fill in the new table's form."""

from __future__ import annotations

import pytest

from syncconfig.models import TableConfig
from tests.browser.support import save_page

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WIDTH = 1440


def test_a_table_is_added_by_browsing_the_source_and_ticking_its_columns(browser, superuser, demo_source):
    browser.driver.set_window_size(WIDTH, 1000)
    browser.log_in()
    browser.open("/admin/syncconfig/tableconfig/add/")

    browser.click_and_wait(browser.find("#fdm-browse-source"))
    browser.click_and_wait(browser.find_xpath("//ul[@id='fdm-browse-list']//a[normalize-space()='DEMO_DB']"))
    browser.click_and_wait(browser.find_xpath("//ul[@id='fdm-browse-list']//a[normalize-space()='PUBLIC']"))
    rows = {
        row.find_element("css selector", "td a").text: row.find_elements("css selector", "td")[2].text
        for row in browser.find_all("#fdm-browse-tables tbody tr")
    }
    assert set(rows) >= {"ACCOUNTS", "MARKET_PRICES", "TRANSACTIONS"}, rows
    browser.click_and_wait(
        browser.find_xpath("//table[@id='fdm-browse-tables']//a[normalize-space()='TRANSACTIONS']")
    )

    columns = {
        row.find_elements("css selector", "td")[0].text: row.find_elements("css selector", "td")[2].text
        for row in browser.find_all("#fdm-browse-columns tbody tr")
    }
    assert columns["TXN_ID"] == "numeric(38,0)" and columns["UPDATED_AT"].startswith("timestamp")
    browser.find("input[name=incremental_column][value=UPDATED_AT]").click()
    browser.find("input[name=encrypted_columns][value=ACCOUNT_ID]").click()
    browser.find("input[name=searchable_columns][value=ACCOUNT_ID]").click()
    browser.find("input[name=compressed_columns][value=DESCRIPTION]").click()
    browser.fill("input[name=name]", "card_transactions")
    browser.fill("input[name=postgres_table]", "card_transactions")
    assert not browser.scrolls_sideways()
    save_page(browser, "source-browser")

    # Checked against the source before anything is saved: the columns exist, the key is unique in a sample.
    browser.click_and_wait(browser.find("#fdm-check-choices"))
    browser.expect_text("card_transactions checks out against", "#fdm-check-verdict")
    assert not TableConfig.objects.filter(name="card_transactions").exists()
    save_page(browser, "source-check")
    browser.click_and_wait(browser.find("#fdm-add-checked"))

    # The new table's form, filled in: review and save.
    assert browser.path().startswith("/admin/syncconfig/tableconfig/add/?")
    assert browser.find("#id_snowflake_table").get_attribute("value") == "TRANSACTIONS"
    browser.click_and_wait(browser.find("input[name=_save]"))

    table = TableConfig.objects.get(name="card_transactions")
    assert (table.snowflake_database, table.snowflake_schema, table.snowflake_table) == (
        "DEMO_DB",
        "PUBLIC",
        "TRANSACTIONS",
    )
    assert (table.sync_mode, table.incremental_column) == ("incremental", "UPDATED_AT")
    assert (table.encryption_mode, table.encrypted_columns, table.searchable_columns) == (
        "columns",
        ["ACCOUNT_ID"],
        ["ACCOUNT_ID"],
    )
    assert (table.compression_mode, table.compressed_columns) == ("columns", ["DESCRIPTION"])
    assert table.primary_key == ["TXN_ID"]  # the source's declared key, ticked for us
