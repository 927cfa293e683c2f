"""Helpers for the real-browser admin tests: a Chromium session with bounded waits that save a screenshot on
failure, and a django-q2 worker cluster in a subprocess."""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Headless, and nothing that reaches out to the network: without the background-networking flags Chromium
# hangs on this machine's refused outbound connections.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1024",  # wide enough for the change list's filter sidebar
)
PAGE_TIMEOUT = 30  # seconds; generous, the machine is shared
DEMO_CONFIG = Path(settings.BASE_DIR) / "config" / "demo" / "tables.yaml"
DEMO_SOURCE_ROWS = 300  # transactions in the emulator's demo source (the demo_source fixture)
ADMIN_USER = "admin"
ADMIN_PASSWORD = "correct horse battery staple"


CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " blocked " + (event.blockedURI || "inline"));
});
"""


class Browser:
    """A Chromium session with the few waits these tests need. Every failed wait saves a screenshot and names
    it in its assertion message."""

    def __init__(self, driver: webdriver.Chrome, base_url: str, screenshot_dir: Path, download_dir: Path):
        self.driver = driver
        self.base_url = base_url
        self.screenshot_dir = screenshot_dir
        self.download_dir = download_dir
        self._shots = 0

    # --- failure evidence ---

    def screenshot(self, label: str) -> str:
        self._shots += 1
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)[:80]
        path = self.screenshot_dir / f"{self._shots:02d}-{safe}.png"
        try:
            # The whole page, not only the part inside the window.
            shot = self.driver.execute_cdp_cmd(
                "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
            )
            path.write_bytes(base64.b64decode(shot["data"]))
        except Exception as exc:  # the browser itself may be what failed
            return f"(no screenshot: {exc})"
        return str(path)

    def save_png(self, path: Path) -> None:
        """The whole page as a PNG at `path` (for people to look at, not for failures)."""
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        path.write_bytes(base64.b64decode(shot["data"]))

    def scrolls_sideways(self) -> bool:
        """Whether the page, or the change list's results inside it, is wider than its box (a horizontal
        scroll bar)."""
        return bool(
            self.driver.execute_script(
                "const wide = (e) => e && e.scrollWidth > e.clientWidth + 1;"
                "return wide(document.documentElement) || wide(document.querySelector('#changelist .results'));"
            )
        )

    def fail(self, message: str) -> AssertionError:
        shot = self.screenshot(message)
        return AssertionError(f"{message}\n  page: {self.driver.current_url}\n  screenshot: {shot}")

    # --- navigation ---

    def url(self, path: str) -> str:
        return self.base_url + path

    def open(self, path: str) -> None:
        self.driver.get(self.url(path))

    def path(self) -> str:
        current = self.driver.current_url
        return current[len(self.base_url) :] if current.startswith(self.base_url) else current

    def click_and_wait(self, element: WebElement) -> None:
        """Click something that loads a new page, and wait until the new page has loaded."""
        old_page = self.driver.find_element(By.TAG_NAME, "html")
        element.click()
        self.wait_until(lambda: _is_stale(old_page), "the next page to load")
        self.wait_until(
            lambda: self.driver.execute_script("return document.readyState") == "complete",
            "the next page to finish loading",
        )

    # --- finding and waiting ---

    def wait_until(
        self, condition: Callable[[], Any], what: str, *, timeout: float = PAGE_TIMEOUT, every: float = 0.1
    ) -> Any:
        """Poll `condition` every `every` seconds until it returns something true; fail after `timeout`."""
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=every).until(lambda _: condition())
        except TimeoutException:
            raise self.fail(f"timed out after {timeout}s waiting for {what}") from None

    def find(self, css: str) -> WebElement:
        found = self.driver.find_elements(By.CSS_SELECTOR, css)
        if not found:
            raise self.fail(f"nothing on the page matches {css!r}")
        return found[0]

    def find_all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def find_xpath(self, xpath: str) -> WebElement:
        found = self.driver.find_elements(By.XPATH, xpath)
        if not found:
            raise self.fail(f"nothing on the page matches {xpath!r}")
        return found[0]

    def csp_violations(self) -> list[str]:
        """What the current page's Content-Security-Policy blocked since it loaded."""
        return self.driver.execute_script("return window.__cspViolations || []")

    def text(self, css: str = "body") -> str:
        return self.find(css).text

    def expect_text(self, needle: str, css: str = "body") -> None:
        text = self.text(css)
        if needle not in text:
            raise self.fail(f"expected {needle!r} in {css!r}, which reads:\n{text}")

    def fill(self, css: str, value: str) -> None:
        field = self.find(css)
        field.clear()
        field.send_keys(value)

    # --- downloads ---

    def download(self, start: Callable[[], None], filename: str) -> str:
        """Run `start` (a click that downloads `filename`) and return the downloaded file's text."""
        target = Path(tempfile.mkdtemp(dir=self.download_dir))
        self.driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(target)}
        )
        start()
        path = target / filename
        # Chromium writes to a .crdownload file and renames it when the download is complete.
        self.wait_until(
            lambda: path.exists() and not list(target.glob("*.crdownload")), f"{filename} to be downloaded"
        )
        return path.read_text(encoding="utf-8")

    # --- the admin ---

    def log_in(self, username: str = ADMIN_USER, password: str = ADMIN_PASSWORD) -> None:
        """Log in through the admin's login form, with a code from the user's TOTP device when the user has
        one (enrolled, for those who need one, by the `superuser` fixture or `tests.two_factor.device_for`)."""
        from django.contrib.auth import get_user_model
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from tests.two_factor import next_token

        self.open("/admin/")
        self.wait_until(lambda: self.find_all("#login-form"), "the login form")
        self.fill("#id_username", username)
        self.fill("#id_password", password)
        user = get_user_model().objects.filter(username=username).first()
        device = TOTPDevice.objects.filter(user=user, confirmed=True).first() if user else None
        if device is not None:
            self.fill("#id_otp_token", next_token(device))
        self.click_and_wait(self.find("#login-form input[type=submit]"))
        if self.find_all("#login-form"):
            raise self.fail(f"the login of {username!r} was refused")

    def result_names(self) -> list[str]:
        """The table names in the change list, in order."""
        return [cell.text for cell in self.find_all("#result_list tbody th.field-name")]


def _is_stale(element: WebElement) -> bool:
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        # Mid-navigation, Chromium may report the old page's node this way instead of as stale.
        if "does not belong to the document" in str(exc):
            return True
        raise
    return False


def start_chromium(profile_dir: str) -> webdriver.Chrome:
    """Debian's Chromium, headless, on a fresh profile, driven through Debian's chromedriver."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.add_experimental_option("prefs", {"download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT)
    # Every page records what its Content-Security-Policy blocked (Browser.csp_violations).
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_RECORDER})
    return driver


def save_page(browser: Any, name: str) -> None:
    """Keep a whole-page PNG under FDM_SCREENSHOT_DIR (`make screenshots`); nothing without it."""
    folder = os.environ.get("FDM_SCREENSHOT_DIR")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    browser.save_png(Path(folder) / f"{name}.png")
