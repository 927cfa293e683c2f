"""Where a fault strikes, each found from the run's own progress (its record, its sessions and locks in
PostgreSQL, the target's state), never from a sleep. Each `strike_*` starts the run (`start`), stops it at its
point, applies `fault` (SIGKILL of its process, pg_terminate_backend of its sessions, ...), lets go of
whatever held it there, and returns where the run was.

- `strike_first_batch` (extract): the test locks the run's record once the run logs "extracting", so its
  progress write at the first batch waits: one batch read, nothing staged.
- `strike_in_copy` (COPY): the test locks the new staging table before the first COPY, so the COPY streams
  wait inside their COPY statements and the run stops once its queue is full.
- `strike_publish_wait` (publish, waiting): a reader holds the target in SHARE mode; the publish waits.
- `strike_publish_insert` (publish, inserting): a row trigger on the target waits on an advisory lock the test
  holds at the middle row of the publish's INSERT (half the rows inserted in its open transaction).
- `strike_after_commit`: the test holds the run's record locked while the publish commits; the fault strikes
  once `_fdm.sync_state` names the run, before its outcome is saved.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import psycopg

from syncengine.pipeline.load import STAGING_SCHEMA, staging_prefix
from syncengine.pipeline.locks import table_lock_key
from tests.faults.harness import wait_for

WAIT = 120  # seconds; generous for a shared machine, never reached when things work


class Handle(Protocol):
    run_id: int

    def check_alive(self) -> None: ...


@dataclass
class Target:
    """The table under test: its name, its target relation, and the two databases' DSNs."""

    name: str
    relation: str
    dsn: str  # the target database
    django_dsn: str  # fdm's database (the same server and database here)


Fault = Callable[[Handle], None]
Start = Callable[[], Handle]


def sessions_waiting(target: Target, *, app: str, event: str, relation: str | None = None) -> list[tuple]:
    """The run's sessions (`app`: "sync" or "copy") waiting for a lock of type `event`."""
    sql = (
        "SELECT a.pid FROM pg_stat_activity a WHERE a.application_name = %s AND a.wait_event_type = 'Lock' "
        "AND a.wait_event = %s"
    )
    params: tuple = (f"fdm {app} {target.name}", event)
    if relation is not None:
        sql += " AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted AND l.relation = to_regclass(%s))"
        params += (relation,)
    with psycopg.connect(target.dsn, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def record_write_waiting(target: Target, run_id: int) -> str | None:
    """The run's write to its own record, when it waits on the test's row lock: stage and rows it carries."""
    with psycopg.connect(target.django_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT query FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE 'UPDATE \"syncengine_syncrun\"%%' AND query LIKE %s",
            (f'%"syncengine_syncrun"."id" = {run_id}%',),
        ).fetchall()
    if not rows:
        return None
    query = rows[0][0]
    fields = dict(re.findall(r'"(stage|rows_extracted|rows_loaded)" = \'?(\w*)\'?', query))
    return f"stage {fields.get('stage') or '?'}, {fields.get('rows_extracted', '?')} rows read, {fields.get('rows_loaded', '?')} staged"


def run_logged(target: Target, run_id: int, message: str) -> bool:
    with psycopg.connect(target.django_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT log::text FROM syncengine_syncrun WHERE id = %s", (run_id,)).fetchone()
    return row is not None and f'"message": "{message}"' in row[0]


def lock_record(target: Target, run_id: int) -> psycopg.Connection:
    conn = psycopg.connect(target.django_dsn)
    conn.execute("SELECT 1 FROM syncengine_syncrun WHERE id = %s FOR UPDATE", (run_id,))
    return conn


def strike_first_batch(target: Target, start: Start, fault: Fault) -> str:
    handle = start()
    wait_for(
        lambda: run_logged(target, handle.run_id, "extracting"),
        timeout=WAIT,
        what="extracting",
        alive=handle.check_alive,
    )
    with lock_record(target, handle.run_id) as record:
        where = wait_for(
            lambda: record_write_waiting(target, handle.run_id),
            timeout=WAIT,
            what="the run's progress write to wait on its record",
            alive=handle.check_alive,
        )
        fault(handle)
        record.rollback()
    return f"extract: {where}"


def new_staging_table(target: Target) -> str | None:
    with psycopg.connect(target.dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND starts_with(tablename, %s)",
            (STAGING_SCHEMA, staging_prefix(target.name)),
        ).fetchone()
    return row[0] if row else None


def strike_in_copy(target: Target, start: Start, fault: Fault) -> str:
    handle = start()
    staging = wait_for(
        lambda: new_staging_table(target), timeout=WAIT, what="the staging table", alive=handle.check_alive
    )
    with psycopg.connect(target.dsn) as holder:
        holder.execute(f'LOCK TABLE "{STAGING_SCHEMA}"."{staging}" IN ACCESS EXCLUSIVE MODE')
        copying = wait_for(
            lambda: sessions_waiting(target, app="copy", event="relation"),
            timeout=WAIT,
            what="the COPY streams to wait inside their COPY",
            alive=handle.check_alive,
        )
        fault(handle)
        holder.rollback()
    return f"COPY: {len(copying)} COPY streams inside their COPY statements, nothing staged yet"


def strike_publish_wait(target: Target, start: Start, fault: Fault) -> str:
    with psycopg.connect(target.dsn) as blocker:
        blocker.execute(f"LOCK TABLE {target.relation} IN SHARE MODE")
        handle = start()
        wait_for(
            lambda: sessions_waiting(target, app="sync", event="relation", relation=target.relation),
            timeout=WAIT,
            what="the publish to wait for the target's lock",
            alive=handle.check_alive,
        )
        fault(handle)
        # A report that holds the table for long: a dead run's lock request must not outlast its client by
        # much, or readers queue behind it. The run's publish lock timeout (FDM_PUBLISH_LOCK_TIMEOUT, 300 s in
        # these processes) is far longer than this wait; a live run's request stays.
        wait_for(
            lambda: not sessions_waiting(target, app="sync", event="relation", relation=target.relation),
            timeout=60,
            what="the dead run's lock request to go while the reader still holds the table",
        )
        blocker.rollback()
    return "publish: waiting for the target's lock (a reader holds it in SHARE mode)"


def pause_key(name: str) -> int:
    return table_lock_key(f"fault pause {name}")


def add_insert_pause(target: Target, *, at_key: int) -> None:
    """A row trigger on the target that waits, at the row with `txn_id = at_key`, for an advisory lock the test
    may hold (`pause_key`): an INSERT stops halfway, inside the publishing transaction."""
    function = f'"fault_pause_{target.name}"'
    with psycopg.connect(target.dsn, autocommit=True) as conn:
        conn.execute(
            f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.txn_id = {at_key} THEN PERFORM pg_advisory_xact_lock_shared({pause_key(target.name)}); "
            "END IF; RETURN NEW; END $$"
        )
        conn.execute(
            f"CREATE TRIGGER fault_pause BEFORE INSERT ON {target.relation} FOR EACH ROW EXECUTE FUNCTION {function}()"
        )


def strike_publish_insert(target: Target, start: Start, fault: Fault, *, at_key: int) -> str:
    add_insert_pause(target, at_key=at_key)
    with psycopg.connect(target.dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (pause_key(target.name),))
        handle = start()
        wait_for(
            lambda: sessions_waiting(target, app="sync", event="advisory"),
            timeout=WAIT,
            what="the publish's INSERT to reach the middle row",
            alive=handle.check_alive,
        )
        fault(handle)
        holder.execute("SELECT pg_advisory_unlock(%s)", (pause_key(target.name),))
    return f"publish: inside its INSERT, at row txn_id {at_key}"


def state_names_run(target: Target, run_id: int) -> bool:
    with psycopg.connect(target.dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT 1 FROM _fdm.sync_state WHERE table_name = %s AND run_id = %s", (target.name, str(run_id))
        ).fetchone()
    return row is not None


def strike_after_commit(target: Target, start: Start, fault: Fault) -> str:
    with psycopg.connect(target.dsn) as blocker:
        blocker.execute(f"LOCK TABLE {target.relation} IN SHARE MODE")
        handle = start()
        wait_for(
            lambda: sessions_waiting(target, app="sync", event="relation", relation=target.relation),
            timeout=WAIT,
            what="the publish to wait",
            alive=handle.check_alive,
        )
        record = lock_record(target, handle.run_id)
        blocker.rollback()  # the publish goes on and commits; the run then waits on its record
    with record:
        wait_for(
            lambda: state_names_run(target, handle.run_id),
            timeout=WAIT,
            what="the publish to commit",
            alive=handle.check_alive,
        )
        fault(handle)
        record.rollback()
    return "after COMMIT: the target's state names the run; its outcome not yet saved"


STRIKES = {
    "extract": strike_first_batch,
    "copy": strike_in_copy,
    "publish-wait": strike_publish_wait,
    "publish-insert": strike_publish_insert,
    "after-commit": strike_after_commit,
}
