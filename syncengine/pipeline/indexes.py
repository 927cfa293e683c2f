"""Indexes set aside while a full load refills its target, and rebuilt before the commit.

Maintaining a B-tree row by row during a bulk INSERT is several times slower than building it once from the
loaded rows (measured: 1M rows with the primary key and two secondary indexes, 12-16 s maintained against
about 5 s inserted then built; docs/performance.md, "Publishing"). The full load runs after its TRUNCATE,
whose ACCESS EXCLUSIVE lock keeps every reader out until the commit, and every index comes back under its name
and definition before that commit, so nobody sees the table without one.

An index is set aside only when its definition carries everything about it; the others stay in place and are
maintained as before: one in another tablespace, the index used for CLUSTER or as replica identity, one with a
comment or a per-column statistics target, one anything depends on (a foreign key refers to it), one of a
partition, an invalid one, and a constraint whose index has storage parameters or whose constraint has a
comment (`pg_get_constraintdef` leaves both out). Rebuilt indexes start their usage counters
(`pg_stat_user_indexes`) afresh.
"""

from __future__ import annotations

import psycopg

from syncengine.pipeline.identifiers import quote_postgres

# Sort memory for the rebuilds, raised for this transaction only (never lowered): with the default 64 MB the
# sort of 1M numeric keys spills to disk.
INDEX_BUILD_MEMORY = "256MB"

_SET_ASIDE_SQL = """
SELECT format('%%I.%%I', n.nspname, ic.relname), c.conname,
       CASE WHEN c.oid IS NULL THEN pg_get_indexdef(i.indexrelid) ELSE pg_get_constraintdef(c.oid) END
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = ic.relnamespace
LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
WHERE i.indrelid = %(target)s::regclass
  AND ic.relkind = 'i' AND ic.reltablespace = 0
  AND i.indisvalid AND i.indisready AND i.indislive AND NOT i.indisclustered AND NOT i.indisreplident
  AND obj_description(i.indexrelid, 'pg_class') IS NULL
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = i.indexrelid)
  AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)
  AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                  WHERE a.attrelid = i.indexrelid AND coalesce(a.attstattarget, -1) >= 0)
  AND (c.oid IS NULL OR (c.contype IN ('p', 'u') AND c.conparentid = 0 AND ic.reloptions IS NULL
                         AND obj_description(c.oid, 'pg_constraint') IS NULL))
ORDER BY c.contype = 'p' DESC NULLS LAST, ic.relname
"""


def set_aside_indexes(conn: psycopg.Connection, target: str) -> list[str]:
    """Drop the indexes of `target` (quoted, schema-qualified) that can be rebuilt exactly, primary key and
    unique constraints included, and return the statements that rebuild them (primary key first).

    Call only while holding the table's ACCESS EXCLUSIVE lock, and run every returned statement before the
    commit (`rebuild_indexes`)."""
    rebuild: list[str] = []
    for index, constraint, definition in conn.execute(_SET_ASIDE_SQL, {"target": target}).fetchall():
        if constraint is None:
            conn.execute(f"DROP INDEX {index}")  # format(%I.%I): quoted
            rebuild.append(definition)
        else:
            conn.execute(f"ALTER TABLE {target} DROP CONSTRAINT {quote_postgres(constraint)}")
            rebuild.append(f"ALTER TABLE {target} ADD CONSTRAINT {quote_postgres(constraint)} {definition}")
    return rebuild


def rebuild_indexes(conn: psycopg.Connection, statements: list[str]) -> None:
    """Run the statements `set_aside_indexes` returned, with more sort memory for this transaction."""
    if not statements:
        return
    conn.execute(
        "SELECT set_config('maintenance_work_mem', %(memory)s, true) "
        "WHERE pg_size_bytes(current_setting('maintenance_work_mem')) < pg_size_bytes(%(memory)s)",
        {"memory": INDEX_BUILD_MEMORY},
    )
    for statement in statements:
        conn.execute(statement)
