"""Compression dictionaries in the target database, `_fdm.compression_dictionaries`.

A trained dictionary is stored before any frame that uses it (in its own transaction), so frames stay
readable whatever happens to the run; a full load drops the table's dictionaries its frames no longer use.
"""

from __future__ import annotations

import psycopg

from syncengine.pipeline.errors import DictionaryIdTaken
from syncengine.pipeline.protection.compress import Dictionary
from syncengine.pipeline.watermark import STATE_SCHEMA

DICTIONARIES_TABLE = f"{STATE_SCHEMA}.compression_dictionaries"


def dictionaries_table_sql() -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {DICTIONARIES_TABLE} ("
        " dict_id bigint PRIMARY KEY,"
        " table_name text NOT NULL,"
        " column_name text NOT NULL,"
        " data bytea NOT NULL,"
        " created_at timestamptz NOT NULL DEFAULT now())"
    )


def save_dictionary(conn: psycopg.Connection, *, table: str, column: str, dictionary: Dictionary) -> None:
    """Store a dictionary for a table's column; storing the same one again is a no-op.

    Raises DictionaryIdTaken when the id is stored already with other data or for another table (whose
    values this table's `load_dictionaries` would not find); train again with a new id. Runs in the caller's
    transaction: commit it no later than the data compressed with the dictionary.
    """
    inserted = conn.execute(
        f"INSERT INTO {DICTIONARIES_TABLE} (dict_id, table_name, column_name, data) "  # noqa: S608 - constant
        "VALUES (%s, %s, %s, %s) ON CONFLICT (dict_id) DO NOTHING RETURNING dict_id",
        (dictionary.dict_id, table, column, dictionary.data),
    ).fetchone()
    if inserted is not None:
        return
    stored = conn.execute(
        f"SELECT table_name, data FROM {DICTIONARIES_TABLE} WHERE dict_id = %s",  # noqa: S608
        (dictionary.dict_id,),
    ).fetchone()
    if stored is not None and stored[0] == table and bytes(stored[1]) == dictionary.data:
        return
    raise DictionaryIdTaken(
        f"compression dictionary id {dictionary.dict_id} is already stored with other contents",
        table=table,
        column=column,
    )


def load_dictionaries(conn: psycopg.Connection, *, table: str) -> dict[int, Dictionary]:
    """Every dictionary stored for the table's columns, by id (what `decompress_array` takes)."""
    rows = conn.execute(
        f"SELECT dict_id, data FROM {DICTIONARIES_TABLE} WHERE table_name = %s",  # noqa: S608
        (table,),
    ).fetchall()
    return {int(dict_id): Dictionary(dict_id=int(dict_id), data=bytes(data)) for dict_id, data in rows}


def latest_dictionaries(conn: psycopg.Connection, table_name: str) -> dict[str, Dictionary]:
    """The newest stored compression dictionary of each of the table's columns."""
    rows = conn.execute(
        f"SELECT DISTINCT ON (column_name) column_name, dict_id, data FROM {DICTIONARIES_TABLE} "  # noqa: S608
        "WHERE table_name = %s ORDER BY column_name, created_at DESC, dict_id",
        (table_name,),
    ).fetchall()
    return {column: Dictionary(dict_id=int(dict_id), data=bytes(data)) for column, dict_id, data in rows}


def prune_dictionaries(conn: psycopg.Connection, table_name: str, *, keep: set[int]) -> int:
    """After a full load (in its publishing transaction) only this run's frames exist: drop the table's other
    dictionaries, so that they do not pile up run after run. Returns how many were dropped."""
    cursor = conn.execute(
        f"DELETE FROM {DICTIONARIES_TABLE} WHERE table_name = %s AND NOT (dict_id = ANY(%s))",  # noqa: S608
        (table_name, sorted(keep)),
    )
    return cursor.rowcount
