"""fdm talks to the configured Snowflake host and nothing else: a login never probes cloud metadata addresses.

Every outgoing connection and name lookup of this process is seen through Python's audit hooks
(`socket.connect`, `socket.getaddrinfo`), below the connector and every HTTP library it uses.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
import snowflake.connector

from syncengine.dev.emulator import emulator_settings

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
_recorders: list[list[str]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _recorders:
        return
    if event == "socket.connect":
        address = args[1]
        host = address[0] if isinstance(address, tuple) else str(address)
    elif event == "socket.getaddrinfo":
        host = str(args[0])
    else:
        return
    for recorder in _recorders:
        recorder.append(host)


sys.addaudithook(_audit)  # audit hooks cannot be removed; `_recorders` switches this one on and off


@pytest.fixture
def destinations() -> Iterator[list[str]]:
    seen: list[str] = []
    _recorders.append(seen)
    try:
        yield seen
    finally:
        _recorders.remove(seen)


def test_a_login_probes_no_cloud_metadata_address(snowflake_server, monkeypatch, destinations):
    monkeypatch.delenv("SNOWFLAKE_DISABLE_PLATFORM_DETECTION", raising=False)
    settings = emulator_settings(snowflake_server)
    conn = settings.connect()
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    finally:
        conn.close()
    assert destinations, "the audit hook saw no connection at all"
    assert set(destinations) <= LOCAL_HOSTS, f"a login reached beyond 127.0.0.1: {sorted(set(destinations))}"


def test_the_check_sees_the_probes_of_a_login_that_makes_them(snowflake_server, monkeypatch, destinations):
    """The control: the connector's defaults do probe, and the hook above catches it."""
    monkeypatch.delenv("SNOWFLAKE_DISABLE_PLATFORM_DETECTION", raising=False)
    kwargs = {key: value for key, value in snowflake_server.items()}
    conn = snowflake.connector.connect(**kwargs, platform_detection_timeout_seconds=0.3)
    conn.close()
    assert "169.254.169.254" in destinations
