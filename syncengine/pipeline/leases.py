"""A table's lease: the one-run-per-table guarantee for a run that outlives any one process.

A run in one process holds the table's session-level advisory lock (`locks`) from start to end. A sliced run
is carried by several tasks on any worker (a start, one task per slice, a publish), so no one session can hold
the lock for it. Instead the start writes a row in `_fdm.table_leases` naming the run (and its staging table),
committed, and every run of the table checks it under the advisory lock: a lease held by another run means
TableBusy. The sliced run's own tasks take the advisory lock only for their short critical sections (checking
the lease and resetting a slice's staging; publishing), and the publishing transaction deletes the lease with
the data, so the table is free exactly when the new rows are visible. A failed sliced run releases its lease
when its staging is dropped (`release_lease`, by the run itself or the reaper).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from syncengine.pipeline.errors import TableBusy
from syncengine.pipeline.watermark import STATE_SCHEMA

LEASES_TABLE = "table_leases"
LEASES = f"{STATE_SCHEMA}.{LEASES_TABLE}"


def leases_table_sql() -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {LEASES} (table_name text PRIMARY KEY, run_id text NOT NULL, "
        "staging text NOT NULL, taken_at timestamptz NOT NULL DEFAULT now())"
    )


@dataclass(frozen=True)
class Lease:
    table_name: str
    run_id: str
    staging: str  # the run's staging table (its slices inherit from it)


def read_lease(conn: psycopg.Connection, table_name: str) -> Lease | None:
    row = conn.execute(
        f"SELECT run_id, staging FROM {LEASES} WHERE table_name = %s",  # noqa: S608 - a constant name
        (table_name,),
    ).fetchone()
    return Lease(table_name, str(row[0]), str(row[1])) if row else None


def read_leases(conn: psycopg.Connection) -> list[Lease]:
    """Every lease (empty when fdm's schemas do not exist yet)."""
    if conn.execute("SELECT to_regclass(%s) IS NULL", (LEASES,)).fetchone() == (True,):
        return []
    rows = conn.execute(f"SELECT table_name, run_id, staging FROM {LEASES}").fetchall()  # noqa: S608
    return [Lease(str(name), str(run), str(staging)) for name, run, staging in rows]


def check_free(conn: psycopg.Connection, table_name: str, run_id: str | None) -> Lease | None:
    """Call under the table's advisory lock. TableBusy when another run holds the lease; the lease when this
    run holds it; None when nobody does."""
    lease = read_lease(conn, table_name)
    if lease is not None and lease.run_id != run_id:
        raise TableBusy(f"sliced run {lease.run_id} holds this table", table=table_name)
    return lease


def take_lease(conn: psycopg.Connection, lease: Lease) -> None:
    """Call under the table's advisory lock, after `check_free`; committed by the caller."""
    conn.execute(
        f"INSERT INTO {LEASES} (table_name, run_id, staging) VALUES (%s, %s, %s)",  # noqa: S608
        (lease.table_name, lease.run_id, lease.staging),
    )


def release_lease(conn: psycopg.Connection, table_name: str, run_id: str) -> bool:
    """Delete the lease if `run_id` holds it (in the caller's transaction); whether it did."""
    cursor = conn.execute(
        f"DELETE FROM {LEASES} WHERE table_name = %s AND run_id = %s",  # noqa: S608 - a constant name
        (table_name, run_id),
    )
    return cursor.rowcount > 0
