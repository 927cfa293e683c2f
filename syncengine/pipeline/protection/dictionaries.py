"""Compression dictionaries in the target database, `_fdm.compression_dictionaries`.

A trained dictionary is stored before any frame that uses it (in its own transaction), so frames stay
readable whatever happens to the run; a full load drops the table's dictionaries its frames no longer use.
Dictionaries belong to the target table (schema, table) whose frames use them, whatever fdm calls the table;
`table_name` is kept as information.
"""

from __future__ import annotations

import psycopg

from syncengine.pipeline.errors import DictionaryIdTaken
from syncengine.pipeline.protection.compress import Dictionary
from syncengine.pipeline.watermark import STATE_SCHEMA, STATE_TABLE

DICTIONARIES_NAME = "compression_dictionaries"
DICTIONARIES_TABLE = f"{STATE_SCHEMA}.{DICTIONARIES_NAME}"


def dictionaries_table_sql() -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {DICTIONARIES_TABLE} ("
        " dict_id bigint PRIMARY KEY,"
        " table_name text NOT NULL,"
        " target_schema text,"
        " target_table text,"
        " column_name text NOT NULL,"
        " data bytea NOT NULL,"
        " created_at timestamptz NOT NULL DEFAULT now())"
    )


def dictionaries_current_sql() -> str:
    """A boolean SQL expression: the dictionaries table exists in its current shape (with the target)."""
    return (
        "EXISTS (SELECT 1 FROM pg_attribute a JOIN pg_class r ON r.oid = a.attrelid JOIN pg_namespace n "  # noqa: S608
        f"ON n.oid = r.relnamespace WHERE n.nspname = '{STATE_SCHEMA}' AND r.relname = '{DICTIONARIES_NAME}' "
        "AND a.attname = 'target_table' AND NOT a.attisdropped)"
    )


def upgrade_dictionaries(conn: psycopg.Connection, *, catalog: str) -> None:
    """Give an older dictionaries table (keyed by fdm's table name only) the target of each dictionary, in
    place; a no-op once done. Call under the bootstrap lock, before the catalog's own upgrade (which drops the
    rows of names a table had before a rename): the target comes from the protection `catalog` under the same
    name, else from the sync state. A dictionary neither knows stays without a target: no published frame
    can use it (the first run that trained it never published).
    """
    row = conn.execute(f"SELECT {dictionaries_current_sql()}").fetchone()
    if row and row[0]:
        return
    conn.execute(
        f"ALTER TABLE {DICTIONARIES_TABLE} ADD COLUMN IF NOT EXISTS target_schema text, "
        "ADD COLUMN IF NOT EXISTS target_table text"
    )
    for known in (catalog, f"{STATE_SCHEMA}.{STATE_TABLE}"):
        conn.execute(
            f"UPDATE {DICTIONARIES_TABLE} AS d SET target_schema = k.target_schema, "  # noqa: S608 - constants
            f"target_table = k.target_table FROM (SELECT DISTINCT ON (table_name) table_name, target_schema, "
            f"target_table FROM {known} ORDER BY table_name) AS k "
            "WHERE d.target_table IS NULL AND d.table_name = k.table_name"
        )


def save_dictionary(  # noqa: PLR0913 - keyword-only: where the dictionary belongs, and the dictionary
    conn: psycopg.Connection, *, table_name: str, schema: str, table: str, column: str, dictionary: Dictionary
) -> None:
    """Store a dictionary for a target table's column; storing the same one again is a no-op.

    Raises DictionaryIdTaken when the id is stored already with other data or for another target (whose
    values this target's `load_dictionaries` would not find); train again with a new id. Runs in the
    caller's transaction: commit it no later than the data compressed with the dictionary.
    """
    inserted = conn.execute(
        f"INSERT INTO {DICTIONARIES_TABLE} "  # noqa: S608 - constant
        "(dict_id, table_name, target_schema, target_table, column_name, data) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (dict_id) DO NOTHING RETURNING dict_id",
        (dictionary.dict_id, table_name, schema, table, column, dictionary.data),
    ).fetchone()
    if inserted is not None:
        return
    stored = conn.execute(
        f"SELECT target_schema, target_table, data FROM {DICTIONARIES_TABLE} WHERE dict_id = %s",  # noqa: S608
        (dictionary.dict_id,),
    ).fetchone()
    if (
        stored is not None
        and (stored[0], stored[1]) == (schema, table)
        and bytes(stored[2]) == dictionary.data
    ):
        return
    raise DictionaryIdTaken(
        f"compression dictionary id {dictionary.dict_id} is already stored with other contents",
        table=table_name,
        column=column,
    )


def load_dictionaries(conn: psycopg.Connection, *, schema: str, table: str) -> dict[int, Dictionary]:
    """Every dictionary stored for the target table's columns, by id (what `decompress_array` takes)."""
    rows = conn.execute(
        f"SELECT dict_id, data FROM {DICTIONARIES_TABLE} "  # noqa: S608
        "WHERE target_schema = %s AND target_table = %s",
        (schema, table),
    ).fetchall()
    return {int(dict_id): Dictionary(dict_id=int(dict_id), data=bytes(data)) for dict_id, data in rows}


def latest_dictionaries(conn: psycopg.Connection, *, schema: str, table: str) -> dict[str, Dictionary]:
    """The newest stored compression dictionary of each of the target table's columns."""
    rows = conn.execute(
        f"SELECT DISTINCT ON (column_name) column_name, dict_id, data FROM {DICTIONARIES_TABLE} "  # noqa: S608
        "WHERE target_schema = %s AND target_table = %s ORDER BY column_name, created_at DESC, dict_id",
        (schema, table),
    ).fetchall()
    return {column: Dictionary(dict_id=int(dict_id), data=bytes(data)) for column, dict_id, data in rows}


def prune_dictionaries(conn: psycopg.Connection, *, schema: str, table: str, keep: set[int]) -> int:
    """After a full load (in its publishing transaction) only this run's frames exist: drop the target
    table's other dictionaries, so that they do not pile up run after run. Returns how many were dropped."""
    cursor = conn.execute(
        f"DELETE FROM {DICTIONARIES_TABLE} "  # noqa: S608
        "WHERE target_schema = %s AND target_table = %s AND NOT (dict_id = ANY(%s))",
        (schema, table, sorted(keep)),
    )
    return cursor.rowcount
