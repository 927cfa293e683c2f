""" "Sync now" in a real browser, run by a real worker cluster (`manage.py qcluster`) from the Snowflake emulator
into the test database; the run and its counts are then read from the admin's pages."""

from __future__ import annotations

import psycopg
import pytest

from syncconfig.models import TableConfig
from syncengine.choices import RunStatus
from syncengine.connections import target_dsn
from syncengine.models import SyncRun
from tests.browser.support import DEMO_SOURCE_ROWS

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROWS = DEMO_SOURCE_ROWS
RUN_TIMEOUT = 60  # seconds for the worker to take the run and finish it
TERMINAL_LABELS = {RunStatus(status).label for status in RunStatus.terminal()}


def _labelled_cells(browser, css: str) -> dict[str, str]:
    """{header: value} for the rows under `css` that have a header cell and a value cell."""
    return {
        row.find_element("css selector", "th").text: row.find_element("css selector", "td").text
        for row in browser.find_all(f"{css} tr")
        if row.find_elements("css selector", "th") and row.find_elements("css selector", "td")
    }


def test_sync_now_on_a_table_page_runs_it_in_a_worker_and_the_run_page_shows_its_success_and_counts(
    browser, superuser, manual_demo_tables, demo_source, qcluster
):
    table = TableConfig.objects.get(name="transactions")
    table_path = f"/admin/syncconfig/tableconfig/{table.pk}/change/"

    with qcluster() as cluster:
        browser.log_in()
        browser.open(table_path)
        browser.click_and_wait(
            browser.find_xpath("//ul[contains(@class,'object-tools')]//button[normalize-space()='Sync now']")
        )

        # Redirected to the new run's page.
        run = SyncRun.objects.get(table=table)
        run_path = f"/admin/syncengine/syncrun/{run.pk}/change/"
        assert browser.path() == run_path
        browser.expect_text(f"Sync of transactions queued as run #{run.pk}.", ".messagelist")

        # Reload until the worker has finished it.
        def finished_status() -> str | None:
            cluster.check_alive()
            browser.driver.refresh()
            status = browser.text(".field-status_badge .readonly")
            return status if status in TERMINAL_LABELS else None

        status = browser.wait_until(finished_status, "the run to finish", timeout=RUN_TIMEOUT, every=0.5)

    run.refresh_from_db()
    if status != RunStatus.SUCCEEDED.label:
        raise browser.fail(
            f"run #{run.pk} {status}: {run.error_message}\nqcluster log:\n{cluster.log_tail()}"
        )

    # The run page shows the counts the worker recorded. The badge above may have turned terminal through
    # the page's live updates, which leave the results as they were when the page loaded: load it again.
    browser.driver.refresh()
    counts = _labelled_cells(browser, ".fdm-run")
    assert counts["Read from the source"] == str(ROWS) and counts["New"] == str(ROWS), counts
    assert (run.rows_extracted, run.rows_inserted) == (ROWS, ROWS)
    with psycopg.connect(target_dsn(), autocommit=True) as target:
        assert target.execute("SELECT count(*) FROM finance.transactions").fetchone()[0] == ROWS

    # The run page is read-only: no save buttons, no delete link, no editable field.
    assert not browser.find_all("input[name=_save], input[name=_continue], input[name=_addanother]")
    assert not browser.find_all("a.deletelink")
    editable = browser.find_all(
        "#syncrun_form input:not([type=hidden]), #syncrun_form select, #syncrun_form textarea"
    )
    assert editable == [], [field.get_attribute("name") for field in editable]

    # The table's page lists the run in its latest runs, linking to the run page.
    browser.open(table_path)
    heading = browser.find("#runs-group h2").get_attribute("textContent")
    assert heading.strip() == "Latest runs (up to 10)", heading
    inline_rows = browser.find_all("#runs-group tbody tr.form-row")
    assert len(inline_rows) == 1, browser.text("#runs-group")
    cells = {
        name: inline_rows[0].find_element("css selector", f"td.field-{name}").text
        for name in ("run_link", "status_badge", "rows")
    }
    assert cells == {
        "run_link": f"#{run.pk}",
        "status_badge": "Succeeded",
        "rows": f"{ROWS} read, {ROWS} changed",
    }
    browser.click_and_wait(inline_rows[0].find_element("css selector", "td.field-run_link a"))
    assert browser.path() == run_path
