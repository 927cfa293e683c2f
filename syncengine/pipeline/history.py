"""History (SCD type 2): the target keeps every version of a row.

Each version carries `_fdm_valid_from` (the publishing transaction's time), `_fdm_valid_to` (NULL while it is
current) and `_fdm_is_current`; the target's primary key is (key..., _fdm_valid_from). Publishing, inside the
run's one transaction (full and incremental alike: a full load compares the staged rows with the current
versions instead of replacing the table):

1. close the current version of every staged key whose values changed (valid_to = now(), is_current = false);
2. insert a new current version for every staged key that has none (new keys and the ones just closed);
3. deletes (see `deletes`) close the current version of keys no longer in the source.

A view `<table>_current` shows the current versions; the table as of a time D is
`WHERE _fdm_valid_from <= D AND (_fdm_valid_to IS NULL OR _fdm_valid_to > D)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from syncengine.pipeline.errors import ValidationFailed
from syncengine.pipeline.identifiers import quote_postgres
from syncengine.pipeline.schema.fdm_columns import (
    IS_CURRENT,
    LINEAGE_VALUES_SQL,
    RUN_ID,
    SYNCED_AT,
    VALID_FROM,
    VALID_TO,
)
from syncengine.pipeline.schema.target import qualified

# PostgreSQL's identifier limit is 63 bytes: a long table name is shortened before the suffix.
CURRENT_VIEW_SUFFIX = "_current"
_NAME_LIMIT = 63


def current_view_name(table: str) -> str:
    room = _NAME_LIMIT - len(CURRENT_VIEW_SUFFIX)
    shortened = table.encode()[:room].decode(errors="ignore")
    return shortened + CURRENT_VIEW_SUFFIX


def drop_current_view_sql(schema: str, table: str) -> str:
    return f"DROP VIEW IF EXISTS {qualified(schema, current_view_name(table))}"


def create_current_view_sql(schema: str, table: str) -> str:
    """The current versions. Re-created whenever the table's columns change, so it lists them all."""
    return (
        f"CREATE VIEW {qualified(schema, current_view_name(table))} AS "  # noqa: S608 - identifiers quoted
        f"SELECT * FROM {qualified(schema, table)} WHERE {quote_postgres(IS_CURRENT)}"
    )


def _names(columns: list[str] | tuple[str, ...], prefix: str = "") -> str:
    return ", ".join(prefix + quote_postgres(name) for name in columns)


@dataclass(frozen=True)
class VersionedTable:
    """A history table as publishing sees it: its quoted name, the loaded columns, the key, and lineage."""

    target: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    lineage: bool


def publish_history(
    conn: psycopg.Connection, table: VersionedTable, *, staged_rows: str, distinct: int, name: str
) -> tuple[int, int]:
    """Close changed current versions and insert new ones from `staged_rows` (a SELECT with one row for each
    of `distinct` keys); check every staged key has a current version after; return (new keys, changed keys).
    """
    target, columns, key = table.target, table.columns, table.key
    others = [name for name in columns if name not in key]
    current = f"t.{quote_postgres(IS_CURRENT)}"
    matches = " AND ".join(f"t.{quote_postgres(name)} = s.{quote_postgres(name)}" for name in key)
    closed = 0
    if others:
        # Row-wise IS DISTINCT FROM treats NULLs as values; fdm's own columns are never compared.
        closed = conn.execute(
            f"UPDATE {target} t SET {quote_postgres(VALID_TO)} = now(), {quote_postgres(IS_CURRENT)} = false "  # noqa: S608
            f"FROM ({staged_rows}) s WHERE {current} AND {matches} "
            f"AND ({_names(others, 't.')}) IS DISTINCT FROM ({_names(others, 's.')})"
        ).rowcount
    names = [*columns, VALID_FROM, VALID_TO, IS_CURRENT]
    values = f"{_names(columns, 's.')}, now(), NULL, true"
    if table.lineage:
        names += [SYNCED_AT, RUN_ID]
        values += f", {LINEAGE_VALUES_SQL}"
    inserted = conn.execute(
        f"INSERT INTO {target} ({_names(names)}) SELECT {values} FROM ({staged_rows}) s "  # noqa: S608 - quoted
        f"WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE {current} AND {matches})"
    ).rowcount
    row = conn.execute(
        f"SELECT count(*) FROM ({staged_rows}) s "  # noqa: S608 - identifiers quoted
        f"WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE {current} AND {matches})"
    ).fetchone()
    without_current = int(row[0]) if row else 0
    if without_current or inserted > distinct:
        raise ValidationFailed(
            f"{distinct} keys staged but {without_current} without a current version after publishing",
            table=name,
        )
    return inserted - closed, closed
