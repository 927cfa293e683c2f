"""One run per table: a session-level PostgreSQL advisory lock on the target database.

The lock belongs to the run's connection, so it is held for the whole run and released when the run ends or
when its connection drops (a killed worker). A second run of the same table fails to take it and is skipped.
"""

from __future__ import annotations

import hashlib

import psycopg

# Serialises the creation of fdm's own schemas and state table between runs of different tables.
BOOTSTRAP_LOCK_KEY = int.from_bytes(
    hashlib.blake2b(b"fdm:bootstrap", digest_size=8).digest(), "big", signed=True
)


def table_lock_key(table_name: str) -> int:
    """A signed 64-bit key derived from the configured table name (advisory locks take a bigint)."""
    return int.from_bytes(
        hashlib.blake2b(f"fdm:sync:{table_name}".encode(), digest_size=8).digest(), "big", signed=True
    )


def try_lock_table(conn: psycopg.Connection, table_name: str) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (table_lock_key(table_name),)).fetchone()
    return bool(row and row[0])


def unlock_table(conn: psycopg.Connection, table_name: str) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s)", (table_lock_key(table_name),))


def lock_bootstrap(conn: psycopg.Connection) -> None:
    """Within the current transaction; released at its end."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (BOOTSTRAP_LOCK_KEY,))


def held_table_lock_keys(conn: psycopg.Connection) -> set[int]:
    """Keys of the advisory locks some session holds in this database, read from pg_locks (takes no lock).

    A bigint advisory lock shows in pg_locks as its high and low 32 bits (classid, objid) with objsubid 1.
    """
    rows = conn.execute(
        "SELECT classid::bigint, objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND objsubid = 1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchall()
    keys = set()
    for high, low in rows:
        key = (int(high) << 32) | int(low)
        keys.add(key - (1 << 64) if key >= 1 << 63 else key)
    return keys
