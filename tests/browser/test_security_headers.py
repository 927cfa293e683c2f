"""The admin and the docs page work in a real browser under their Content-Security-Policy: Swagger UI renders
from the assets fdm serves itself, and nothing on these pages is blocked."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db(transaction=True)  # the live server sees only committed data


def test_swagger_ui_renders_from_local_assets_with_nothing_blocked(browser, superuser):
    browser.log_in()

    browser.open("/api/v1/docs/")
    # Read in the page: Swagger UI re-renders while it loads, which would leave a WebElement stale.
    info = "return document.querySelector('.swagger-ui .info')?.innerText || ''"
    browser.wait_until(
        lambda: "fdm API" in browser.driver.execute_script(info), "Swagger UI to render the schema"
    )
    operations = "return document.querySelectorAll('.swagger-ui .opblock').length"
    browser.wait_until(lambda: browser.driver.execute_script(operations) > 0, "the operations to be listed")

    assert browser.csp_violations() == []
    sources = browser.driver.execute_script(
        "return performance.getEntriesByType('resource').map((entry) => entry.name)"
    )
    assert sources and all(source.startswith(browser.base_url) for source in sources), sources


@pytest.mark.parametrize(
    "path",
    ["/admin/", "/admin/syncconfig/tableconfig/", "/admin/syncconfig/tableconfig/add/"],
    ids=["index", "change-list", "add-form"],  # test names become screenshot folders: no slashes
)
def test_admin_pages_load_with_nothing_blocked(browser, superuser, path):
    browser.log_in()

    browser.open(path)
    browser.wait_until(
        lambda: browser.driver.execute_script("return document.readyState") == "complete", "the page"
    )

    assert browser.csp_violations() == []
