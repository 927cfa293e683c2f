"""The one Snowflake emulator launcher that the demo, the benchmark and the tests share."""

from __future__ import annotations

import json
import socket

import snowflake.connector

from syncengine.dev.emulator import SESSION_PARAMETERS, emulator, emulator_environment, free_port


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_it_starts_answers_a_real_connector_login_and_stops():
    port = free_port()
    with emulator(port=port) as kwargs:
        assert kwargs["host"] == "127.0.0.1"
        assert kwargs["port"] == port
        assert _listening(port)
        conn = snowflake.connector.connect(**kwargs, platform_detection_timeout_seconds=0)
        try:
            cursor = conn.cursor()
            cursor.execute("SELECT 41 + 1")
            assert cursor.fetchone() == (42,)
        finally:
            conn.close()
    assert not _listening(port)


def test_its_environment_points_fdm_at_it_with_platform_detection_off(snowflake_server):
    environment = emulator_environment(snowflake_server)

    assert environment["SNOWFLAKE_HOST"] == "127.0.0.1"
    assert environment["SNOWFLAKE_PORT"] == str(snowflake_server["port"])
    assert environment["SNOWFLAKE_PROTOCOL"] == "http"
    assert environment["SNOWFLAKE_DISABLE_PLATFORM_DETECTION"] == "true"
    # The emulator has no ALTER SESSION: every session asks it to ignore such statements.
    parameters = json.loads(environment["SNOWFLAKE_SESSION_PARAMETERS"])
    assert parameters["nop_regexes"] == SESSION_PARAMETERS["nop_regexes"]
