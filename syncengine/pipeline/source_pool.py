"""Snowflake sessions kept open between the runs of one worker process.

A run opens a source session to extract and another for the check after publishing; a worker runs table
after table. Logging in is the largest fixed cost of a small table's run against Snowflake (an HTTPS login,
often with a key-pair signature), so a worker keeps a few idle sessions, keyed by their settings, and hands
them out again:

- a session is reused only after its last run finished with it cleanly; one whose run failed is closed
  (`SourceSession` never returns it), since its state after an error is unknown;
- a session idle for more than `check_after_seconds` must answer `SELECT 1` before it is handed out again;
  one that does not (expired, the network gone) is closed and a new one opened. One used moments ago is
  handed out unchecked: the probe is a round trip each run would pay (about 50 ms on the emulator, as much
  as a login there), and a session that died in between fails its run as transient, which is retried;
- a session idle for longer than `max_idle_seconds` is closed rather than reused: Snowflake ends idle
  sessions after four hours, and a short limit keeps a quiet worker from holding sessions;
- after a fork the child starts empty (a socket is never shared between processes); a worker that exits
  leaves its idle sessions to Snowflake's idle timeout rather than wait on logouts.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, fields

from snowflake.connector import SnowflakeConnection
from snowflake.connector import errors as sf_errors

from syncengine.pipeline.source import SnowflakeSettings, close_in_background

DEFAULT_IDLE_LIMIT = 2  # a run holds at most one session at a time; two leave room for a reconcile beside it
DEFAULT_MAX_IDLE_SECONDS = 300.0
DEFAULT_CHECK_AFTER_SECONDS = 30.0


def _key(settings: SnowflakeSettings) -> tuple[object, ...]:
    values: list[object] = []
    for item in fields(settings):
        value = getattr(settings, item.name)
        values.append(repr(sorted(value.items())) if isinstance(value, dict) else value)
    return tuple(values)


class SessionPool:
    """Idle Snowflake sessions of this process, by settings. Thread-safe; `opened` counts logins."""

    def __init__(
        self,
        *,
        idle_limit: int = DEFAULT_IDLE_LIMIT,
        max_idle_seconds: float = DEFAULT_MAX_IDLE_SECONDS,
        check_after_seconds: float = DEFAULT_CHECK_AFTER_SECONDS,
    ):
        self.idle_limit = idle_limit
        self.max_idle_seconds = max_idle_seconds
        self.check_after_seconds = check_after_seconds
        self.opened = 0
        self._idle: list[tuple[tuple[object, ...], SnowflakeConnection, float]] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def source(self, settings: SnowflakeSettings) -> PooledSource:
        return PooledSource(pool=self, settings=settings)

    def acquire(self, settings: SnowflakeSettings) -> SnowflakeConnection:
        """An idle session for `settings` that still answers, else a new one."""
        key = _key(settings)
        while (taken := self._take(key)) is not None:
            conn, idle = taken
            if not conn.is_closed() and (idle <= self.check_after_seconds or _answers(conn)):
                return conn
            _close(conn)
        conn = settings.connect()
        with self._lock:
            self.opened += 1
        return conn

    def release(self, settings: SnowflakeSettings, conn: SnowflakeConnection) -> None:
        """Keep a session a run finished with cleanly, or close it when enough are idle."""
        with self._lock:
            self._forget_after_fork()
            if not conn.is_closed() and len(self._idle) < self.idle_limit:
                self._idle.append((_key(settings), conn, time.monotonic()))
                return
        _close(conn)

    def close_all(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for entry in idle:
            _close(entry[1])

    def _take(self, key: tuple[object, ...]) -> tuple[SnowflakeConnection, float] | None:
        """An idle session for `key` and how long it was idle; sessions idle too long are closed."""
        stale: list[SnowflakeConnection] = []
        found = None
        with self._lock:
            self._forget_after_fork()
            now = time.monotonic()
            for entry in list(self._idle):
                if now - entry[2] > self.max_idle_seconds:
                    self._idle.remove(entry)
                    stale.append(entry[1])
                elif found is None and entry[0] == key:
                    self._idle.remove(entry)
                    found = (entry[1], now - entry[2])
        for conn in stale:
            _close(conn)
        return found

    def _forget_after_fork(self) -> None:
        if self._pid != os.getpid():
            self._idle, self._pid = [], os.getpid()


@dataclass(frozen=True)
class PooledSource:
    """What `run_sync(source=...)` takes to draw its sessions from a pool (`SourceSession` returns them)."""

    pool: SessionPool
    settings: SnowflakeSettings

    def open(self) -> SnowflakeConnection:
        return self.pool.acquire(self.settings)

    def release(self, conn: SnowflakeConnection) -> None:
        self.pool.release(self.settings, conn)


def _answers(conn: SnowflakeConnection) -> bool:
    if conn.is_closed():
        return False
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchall()
    except (sf_errors.Error, OSError):
        return False
    return True


def _close(conn: SnowflakeConnection) -> None:
    # A logout to a source that is gone is retried for the network timeout: nobody waits for it.
    close_in_background(conn.close, what="idle source session")


# The worker process's pool: `syncengine.services` runs every sync through it.
SESSIONS = SessionPool()
