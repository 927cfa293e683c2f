"""The columns fdm itself adds to a target table, all named `_fdm_...`.

- `_fdm_deleted_at` (soft deletes): when the row's key disappeared from the source; NULL while it exists.
- `_fdm_valid_from`, `_fdm_valid_to`, `_fdm_is_current` (history, SCD type 2): each version of a row and the
  publishing transactions that opened and closed it; the target's primary key becomes (key..., _fdm_valid_from).
- `_fdm_synced_at`, `_fdm_run_id` (lineage): the publishing transaction's time and the run that wrote the row.

They are never source columns: drift ignores them, the upsert's "changed" comparison leaves them out, and a
source column whose target name would start with `_fdm_` is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from syncengine.pipeline.errors import ConfigurationError
from syncengine.pipeline.schema.columns import TablePlan
from syncengine.pipeline.schema.target import TargetTable, add_column_sql
from syncengine.pipeline.spec import DeleteMode, TableSpec

PREFIX = "_fdm_"
DELETED_AT = "_fdm_deleted_at"
VALID_FROM = "_fdm_valid_from"
VALID_TO = "_fdm_valid_to"
IS_CURRENT = "_fdm_is_current"
SYNCED_AT = "_fdm_synced_at"
RUN_ID = "_fdm_run_id"

HISTORY_COLUMNS = (
    (VALID_FROM, "timestamptz NOT NULL"),
    (VALID_TO, "timestamptz"),
    (IS_CURRENT, "boolean NOT NULL"),
)
LINEAGE_COLUMNS = ((SYNCED_AT, "timestamptz"), (RUN_ID, "text"))

# What lineage writes: the publishing transaction's time, and the run id it set with set_config (see publish).
RUN_ID_SETTING = "fdm.run_id"
LINEAGE_VALUES_SQL = f"now(), NULLIF(current_setting('{RUN_ID_SETTING}', true), '')"


def is_fdm_column(name: str) -> bool:
    return name.startswith(PREFIX)


def fdm_columns(spec: TableSpec) -> tuple[tuple[str, str], ...]:
    """The columns (name, type) fdm adds to this table's target. With history, a delete closes the current
    version, so `_fdm_deleted_at` is not needed."""
    columns: list[tuple[str, str]] = []
    if spec.history:
        columns.extend(HISTORY_COLUMNS)
    elif spec.deletes.mode == DeleteMode.SOFT:
        columns.append((DELETED_AT, "timestamptz"))
    if spec.lineage:
        columns.extend(LINEAGE_COLUMNS)
    return tuple(columns)


def target_key(spec: TableSpec, key: Sequence[str]) -> tuple[str, ...]:
    """The target's primary key: a history table keeps several versions per key, told apart by _fdm_valid_from."""
    return (*key, VALID_FROM) if spec.history and key else tuple(key)


def check_columns(spec: TableSpec, plan: TablePlan) -> None:
    """Refuse a source column that would land on fdm's own names, and history without a primary key."""
    for column in plan.columns:
        if is_fdm_column(column.target_name):
            raise ConfigurationError(
                f"target name {column.target_name!r} starts with {PREFIX}, which fdm keeps for its own columns; "
                "set column_names",
                table=spec.name,
                column=column.source_name,
            )
    if spec.history and not plan.primary_key:
        raise ConfigurationError(
            "history keeps versions per primary key; configure primary_key", table=spec.name
        )


def columns_to_add(spec: TableSpec, target: TargetTable) -> tuple[list[str], list[str]]:
    """DDL adding the lineage and soft-delete columns an existing target lacks, and what it does in words.

    History cannot be switched on or off on an existing target: it changes the table's primary key and what its
    rows mean (versions rather than rows), so that is refused with what to do instead.
    """
    has_history = target.column(VALID_FROM) is not None
    if spec.history and not has_history:
        raise ConfigurationError(
            "history is on but the target table was created without it; drop the target table or point the "
            "table at a new one so that fdm creates it with version columns",
            table=spec.name,
        )
    if has_history and not spec.history:
        raise ConfigurationError(
            "the target table keeps history (_fdm_valid_from) but history is off; turn history back on or "
            "point the table at a new target",
            table=spec.name,
        )
    ddl: list[str] = []
    changes: list[str] = []
    for name, type_ in fdm_columns(spec):
        if target.column(name) is None:
            ddl.append(add_column_sql(spec.target.schema, spec.target.table, name, type_))
            changes.append(f"added column {name} {type_}")
    return ddl, changes
