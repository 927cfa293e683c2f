"""Real-browser tests of the admin: Debian's Chromium, driven by Selenium through /usr/bin/chromedriver, against
pytest-django's live server (the app in a thread, on the test database).

`make test` installs the two Debian packages when they are missing (the Makefile's `browser` target). When a
test fails, the page it was on is saved as a screenshot under a temporary directory, named in the failure.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import snowflake.connector
from django.contrib.auth import get_user_model
from django.core.management import call_command

from syncconfig import services, yaml_io
from syncengine.dev.sampledata import seed_demo_dataset
from tests.browser.support import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    CHROMEDRIVER,
    CHROMIUM,
    DEMO_CONFIG,
    DEMO_SOURCE_ROWS,
    Browser,
    start_chromium,
)
from tests.two_factor import device_for


@pytest.fixture(scope="session")
def browser_artifacts() -> Iterator[Path]:
    """Screenshots of failed tests stay here (their paths are printed); profiles and downloads are removed."""
    path = Path(tempfile.mkdtemp(prefix="fdm-browser-"))
    for sub in ("profiles", "downloads", "screenshots"):
        (path / sub).mkdir()
    yield path
    shutil.rmtree(path / "profiles", ignore_errors=True)
    shutil.rmtree(path / "downloads", ignore_errors=True)
    if not any((path / "screenshots").iterdir()):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def browser(live_server, browser_artifacts, request) -> Iterator[Browser]:
    """A fresh headless Chromium (its own profile: no cookies carry over) pointed at the live server."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are needed; `make browser` installs them")
    profile = tempfile.mkdtemp(dir=browser_artifacts / "profiles")
    driver = start_chromium(profile)
    # 127.0.0.1 rather than the server's "localhost", so that Chromium does not try ::1 first.
    base_url = live_server.url.replace("://localhost:", "://127.0.0.1:")
    screenshots = browser_artifacts / "screenshots" / request.node.name
    screenshots.mkdir()
    session = Browser(driver, base_url, screenshots, browser_artifacts / "downloads")
    try:
        yield session
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        if not any(screenshots.iterdir()):
            screenshots.rmdir()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[Any]:
    """A failure outside the Browser's own checks (a plain assert) still gets a screenshot of the page."""
    report = yield
    session = getattr(item, "funcargs", {}).get("browser")
    if report.when == "call" and report.failed and isinstance(session, Browser):
        if "screenshot: " not in str(report.longrepr):
            shot = session.screenshot("failure")
            report.sections.append(("browser", f"page: {session.driver.current_url}\nscreenshot: {shot}"))
    return report


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    # Every test logs in through the form; the production hasher would spend seconds on each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def superuser(transactional_db, fast_password_hashing):
    """The admin, with the TOTP device that a superuser needs to log in (log_in types its code)."""
    user = get_user_model().objects.create_superuser(ADMIN_USER, "admin@example.com", ADMIN_PASSWORD)
    device_for(user)
    return user


@pytest.fixture
def demo_tables(transactional_db, settings) -> None:
    """The tables of config/demo/tables.yaml, imported by the real command (no environment overlay)."""
    settings.FDM_ENV = None
    call_command("import_tables", str(DEMO_CONFIG), stdout=io.StringIO())


@pytest.fixture
def demo_source(snowflake_env) -> None:
    """The demo's source tables in the emulator, with a few hundred transactions."""
    connection = snowflake.connector.connect(**snowflake_env)
    try:
        seed_demo_dataset(connection, database="DEMO_DB", rows=DEMO_SOURCE_ROWS)
    finally:
        connection.close()


@pytest.fixture
def manual_demo_tables(transactional_db, settings) -> None:
    """The demo's tables with every schedule set to manual, so that the only run is the one the test starts."""
    settings.FDM_ENV = None
    document = yaml_io.read_file(DEMO_CONFIG)
    for table in document["tables"]:
        table["schedule"] = "manual"
    result = services.tables_import(document=document, source=str(DEMO_CONFIG))
    assert result.ok, result.errors
