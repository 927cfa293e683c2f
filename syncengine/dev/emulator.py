"""The Snowflake emulator for the demo, the benchmark and the tests: fakesnow in server mode, in a child process.

`emulator()` starts it and yields the keyword arguments that `snowflake.connector.connect` takes to reach it
over HTTP; `emulator_environment()` turns them into the SNOWFLAKE_* variables that fdm's settings read, for
processes (workers, the web server) that reach it the way a real deployment reaches Snowflake.

The emulator runs in a child process of its own, never in a thread of the caller: the caller's memory and CPU
figures stay its own (the benchmark measures them), its request log stays out of the caller's output, and it
does not compete for the caller's GIL.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from syncengine.pipeline.source import SnowflakeSettings

# The emulator has no ALTER SESSION, which the connector and fdm issue: it accepts and ignores such statements.
SESSION_PARAMETERS: dict[str, Any] = {"nop_regexes": ["^ALTER SESSION.*"]}
START_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 30


class EmulatorError(RuntimeError):
    """The emulator did not start."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serve(pipe: Any, port: int | None) -> None:
    """Child process: run the emulator until the parent says stop (or goes away). Its log goes nowhere."""
    # Ctrl-C reaches the whole process group; the parent decides when the emulator stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        import fakesnow

        with fakesnow.server(port=port, session_parameters=SESSION_PARAMETERS) as kwargs:
            pipe.send(("started", kwargs))
            try:
                pipe.recv()
            except EOFError:  # the parent is gone
                pass
    except Exception as exc:  # reported to the parent, which raises it
        pipe.send(("failed", f"{type(exc).__name__}: {exc}"))


@contextmanager
def emulator(*, port: int | None = None) -> Iterator[dict[str, Any]]:
    """Start the emulator on 127.0.0.1 (`port`, else a free one); yield `snowflake.connector.connect` keyword
    arguments for it; stop it on exit."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve, args=(child, port), name="snowflake-emulator", daemon=True)
    process.start()
    child.close()
    try:
        if not parent.poll(START_TIMEOUT_SECONDS):
            raise EmulatorError(f"the Snowflake emulator did not start within {START_TIMEOUT_SECONDS} s")
        try:
            state, payload = parent.recv()
        except EOFError:
            raise EmulatorError(f"the Snowflake emulator exited with code {process.exitcode}") from None
        if state != "started":
            raise EmulatorError(f"the Snowflake emulator did not start: {payload}")
        yield payload
    finally:
        if process.is_alive():
            try:
                parent.send("stop")
            except OSError:
                pass
            process.join(STOP_TIMEOUT_SECONDS)
        if process.is_alive():
            process.terminate()
            process.join()
        parent.close()


def emulator_environment(kwargs: dict[str, Any]) -> dict[str, str]:
    """The SNOWFLAKE_* variables that point fdm at the emulator that `emulator()` yielded `kwargs` for.

    Platform detection stays off: a login must not probe cloud metadata addresses (tests/pipeline/test_network.py).
    """
    return {
        "SNOWFLAKE_ACCOUNT": str(kwargs["account"]),
        "SNOWFLAKE_USER": str(kwargs["user"]),
        "SNOWFLAKE_PASSWORD": str(kwargs["password"]),
        "SNOWFLAKE_HOST": str(kwargs["host"]),
        "SNOWFLAKE_PORT": str(kwargs["port"]),
        "SNOWFLAKE_PROTOCOL": str(kwargs["protocol"]),
        "SNOWFLAKE_SESSION_PARAMETERS": json.dumps(kwargs.get("session_parameters") or SESSION_PARAMETERS),
        "SNOWFLAKE_DISABLE_PLATFORM_DETECTION": "true",
    }


def emulator_settings(kwargs: dict[str, Any], **overrides: Any) -> SnowflakeSettings:
    """The core's SnowflakeSettings for the emulator's connection arguments (`overrides`: timeouts, ...)."""
    return SnowflakeSettings(
        account=kwargs["account"],
        user=kwargs["user"],
        password=kwargs["password"],
        host=kwargs["host"],
        port=kwargs["port"],
        protocol=kwargs["protocol"],
        session_parameters=dict(kwargs.get("session_parameters") or {}),
        **overrides,
    )
