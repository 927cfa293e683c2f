"""The operator's pages in a real browser at 1440 px: the front page's dashboard and the tables' status board.

With FDM_SCREENSHOT_DIR set (`make screenshots`), each page is also saved there as a PNG for people to look at.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from syncconfig.models import TableConfig
from syncengine import services
from syncengine.choices import RunStatus, RunTrigger
from syncengine.models import SyncRun
from tests.browser.support import save_page

pytestmark = pytest.mark.django_db(transaction=True)  # the live server sees only committed data

WIDTH = 1440
CHANGELIST = "/admin/syncconfig/tableconfig/"


def _finished(table, status, *, hours_ago: float, seconds: float, rows: int = 0, error: str = "") -> SyncRun:
    run = services.run_create(table=table, trigger=RunTrigger.SCHEDULE)
    run.start(executor="worker:1")
    run.rows_extracted = run.rows_loaded = run.rows_inserted = rows
    run.finish(status, error or None)
    finished = timezone.now() - timedelta(hours=hours_ago)
    SyncRun.objects.filter(pk=run.pk).update(
        queued_at=finished - timedelta(seconds=seconds + 1),
        started_at=finished - timedelta(seconds=seconds),
        finished_at=finished,
    )
    return run


@pytest.fixture
def history(demo_tables) -> dict[str, TableConfig]:
    """Two weeks of runs for the demo's tables: accounts healthy, transactions failing since this morning,
    market_prices late (past its limit), one more table never run and one disabled."""
    tables = {table.name: table for table in TableConfig.objects.all()}
    for day in range(14):
        for hour in (2, 9, 15):
            _finished(
                tables["accounts"], RunStatus.SUCCEEDED, hours_ago=day * 24 + hour, seconds=3.5, rows=5_000
            )
            _finished(
                tables["transactions"],
                RunStatus.FAILED if (day + hour) % 7 == 0 else RunStatus.SUCCEEDED,
                hours_ago=day * 24 + hour + 1,
                seconds=42.0,
                rows=300_000,
                error="source unavailable",
            )
    _finished(
        tables["transactions"],
        RunStatus.FAILED,
        hours_ago=0.5,
        seconds=2.1,
        error="column AMOUNT: value 12345678901.5 does not fit numeric(10,2)\nTraceback (most recent call last): ...",
    )
    _finished(tables["market_prices"], RunStatus.SUCCEEDED, hours_ago=5, seconds=1.2, rows=480)
    TableConfig.objects.filter(name="market_prices").update(max_staleness_minutes=60)
    TableConfig.objects.filter(pk=tables["accounts"].pk).update(max_staleness_minutes=24 * 60)
    never = TableConfig.objects.get(name="accounts")
    never.pk, never.name, never.postgres_table = None, "ledger_entries", "ledger_entries"
    never.save()
    off = TableConfig.objects.get(name="accounts")
    off.pk, off.name, off.postgres_table, off.enabled = None, "legacy_positions", "legacy_positions", False
    off.save()
    return tables


def test_the_front_page_tells_at_a_glance_what_is_wrong_and_where(browser, superuser, history):
    browser.driver.set_window_size(WIDTH, 1000)
    browser.log_in()
    browser.open("/admin/")

    counts = {
        item.find_element("css selector", ".fdm-label").text.lower(): item.find_element(
            "css selector", ".fdm-count"
        ).text
        for item in browser.find_all(".fdm-state-count")
    }
    assert counts == {
        "failing": "1",
        "late": "1",
        "running": "0",
        "never run": "1",
        "healthy": "1",
        "disabled": "1",
    }
    failing = browser.text(".fdm-failing")
    assert (
        "transactions" in failing and "does not fit numeric(10,2)" in failing and "Traceback" not in failing
    )
    assert len(browser.find_all(".fdm-chart rect.fdm-failed")) == 14
    assert len(browser.find_all(".fdm-chart rect.fdm-duration")) == 14
    browser.expect_text("Rows loaded per day", "#fdm-rows-title")
    sections = [caption.text for caption in browser.find_all("#content-related caption")]
    assert sections == ["CONFIGURATION", "RUNS", "AUDIT", "ACCESS", "INTERNALS"]
    assert browser.csp_violations() == []
    assert not browser.scrolls_sideways()
    save_page(browser, "dashboard")

    # The panel refreshes itself: a table that starts failing shows up without a reload.
    _finished(history["accounts"], RunStatus.FAILED, hours_ago=0.1, seconds=1.0, error="source unavailable")
    browser.driver.execute_script("window.fdmRefreshPanel();")
    browser.wait_until(
        lambda: browser.text(".fdm-state-failing .fdm-count") == "2", "the failing count to become 2"
    )
    assert "accounts" in browser.text(".fdm-failing")

    # A count opens the status board filtered to that state.
    browser.click_and_wait(browser.find(".fdm-state-failing a"))
    assert sorted(browser.result_names()) == ["accounts", "transactions"]


def test_the_status_board_fits_1440_px_and_filters_by_state(browser, superuser, history):
    browser.driver.set_window_size(WIDTH, 900)
    browser.log_in()
    browser.open(CHANGELIST)

    badges = {
        row.find_element("css selector", "th.field-name").text: row.find_element(
            "css selector", ".fdm-badge"
        ).text
        for row in browser.find_all("#result_list tbody tr")
    }
    assert badges == {
        "accounts": "Healthy",
        "transactions": "Failing",
        "market_prices": "Late",
        "ledger_entries": "Never run",
        "legacy_positions": "Disabled",
    }
    assert not browser.scrolls_sideways()
    save_page(browser, "status-board")

    browser.click_and_wait(browser.find_xpath("//*[@id='changelist-filter']//a[normalize-space()='Late']"))
    assert browser.result_names() == ["market_prices"]


@pytest.mark.slow
def test_a_run_page_follows_the_run_from_queued_to_succeeded_without_a_reload(
    browser, superuser, manual_demo_tables, demo_source, qcluster
):
    browser.driver.set_window_size(WIDTH, 1000)
    # accounts: a full sync, so that no watermark is left in the target for other tests' syncs to start from.
    table = TableConfig.objects.get(name="accounts")
    browser.log_in()
    browser.open(f"{CHANGELIST}{table.pk}/change/")
    browser.click_and_wait(
        browser.find_xpath("//ul[contains(@class,'object-tools')]//button[normalize-space()='Sync now']")
    )
    run = SyncRun.objects.get(table=table)
    assert browser.path() == f"/admin/syncengine/syncrun/{run.pk}/change/"
    assert browser.text("#fdm-live-status") == "Queued"
    assert browser.find_all("#fdm-cancel button")  # Cancel is on the page while the run may still stop
    # A mark on this page: a reload would lose it.
    browser.driver.execute_script("window.__fdmSamePage = true;")
    save_page(browser, "run-queued")

    with qcluster() as cluster:

        def ended() -> str | None:
            cluster.check_alive()
            status = browser.text("#fdm-live-status")
            return status if status in {"Succeeded", "Failed", "Cancelled", "Skipped"} else None

        status = browser.wait_until(ended, "the page to show the run's end", timeout=90, every=0.5)

    run.refresh_from_db()
    assert status == "Succeeded", f"{run.error_message}\n{cluster.log_tail()}"
    assert browser.driver.execute_script("return window.__fdmSamePage === true")
    summary = browser.text("#fdm-summary")
    assert summary.startswith(f"Loaded {run.rows_extracted:,} rows in ") and "2 columns encrypted" in summary
    assert browser.text(".field-status_badge .readonly") == "Succeeded"
    log = browser.text("#fdm-log")
    assert "published" in log  # log lines arrived while the page stayed open
    assert not browser.find_all("#fdm-cancel")  # nothing left to cancel
    assert browser.find("#fdm-live").get_attribute("data-state") == "ended"
    assert browser.csp_violations() == []

    # The full page after the run: the report a person reads.
    browser.open(browser.path())
    assert not browser.find_all("#fdm-live")
    save_page(browser, "run")
