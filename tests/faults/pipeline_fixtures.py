"""The pipeline's fixtures (an emulator source database and a scratch PostgreSQL target per test), shared with
the fault tests here by import, so that this folder needs no conftest of its own."""

# ruff: noqa: F401 - fixtures are found by name in the importing module

from __future__ import annotations

from collections.abc import Callable

import psycopg

from syncengine.pipeline.load import staging_prefix
from syncengine.pipeline.locks import try_lock_table, unlock_table
from tests.pipeline.conftest import (
    Source,
    make_spec,
    settings,
    source,
    source_connection,
    staging_tables,
    sync,
    target,
)


def lock_is_free(dsn: str, table: str) -> bool:
    """True when no run holds `table`. The lock is taken and given back at once: explicitly, as a closed
    session's locks are released only once the server has ended it, which a run starting next may beat."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        free = try_lock_table(conn, table)
        if free:
            unlock_table(conn, table)
        return free


def leftovers(query: Callable[..., list[tuple]], dsn: str, table: str) -> dict[str, object]:
    """What runs of `table` left behind in its target: staging tables, and whether the table's lock is held."""
    prefix = staging_prefix(table)
    staging = [name for name in staging_tables(query) if name.startswith(prefix)]
    return {"staging": staging, "lock_free": lock_is_free(dsn, table)}
