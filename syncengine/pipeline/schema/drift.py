"""Schema drift: how the source's columns differ from the existing target table, and what this run does
about it under the table's drift policy (see `spec.DriftPolicy`).

Drift is detected before anything is extracted. Its DDL (new columns, widened types, or the whole table when
it is missing) runs inside the publishing transaction, so a failed run leaves the target exactly as it was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from syncengine.pipeline.errors import SchemaDriftError
from syncengine.pipeline.schema.columns import ColumnPlan, TablePlan
from syncengine.pipeline.schema.fdm_columns import columns_to_add, fdm_columns, is_fdm_column, target_key
from syncengine.pipeline.schema.target import (
    TargetTable,
    add_column_sql,
    add_primary_key_sql,
    alter_type_sql,
    create_table_sql,
)
from syncengine.pipeline.spec import DriftPolicy, TableSpec
from syncengine.pipeline.typemap import BYTEA, holds, widened, wire_type


@dataclass(frozen=True)
class LoadColumn:
    """A column as this run stages and publishes it: its plan and the target column type it is loaded into."""

    plan: ColumnPlan
    target_type: str
    wire: pa.DataType

    @property
    def name(self) -> str:
        return self.plan.target_name


@dataclass
class DriftPlan:
    load_columns: tuple[LoadColumn, ...]
    ddl: tuple[str, ...] = ()  # run first in the publishing transaction
    finish_ddl: tuple[str, ...] = ()  # run after the rows are in, in the same transaction
    changes: list[str] = field(default_factory=list)  # what differs and what was done about it
    creates_table: bool = False


def _load_column(spec: TableSpec, plan: ColumnPlan, target_type: str) -> LoadColumn:
    wire = wire_type(target_type, plan.source)
    if wire is None:
        raise SchemaDriftError(
            f"target column has type {target_type}, which fdm cannot load; restore a supported type",
            table=spec.name,
            column=plan.target_name,
        )
    return LoadColumn(plan=plan, target_type=target_type, wire=wire)


def _protection_toggled(column: ColumnPlan, existing_type: str) -> bool:
    """Is a column's type changing because it became (or stopped being) encrypted or compressed?"""
    if column.plain_type is not None:
        return existing_type != BYTEA
    return existing_type == BYTEA and column.target_type != BYTEA


@dataclass(frozen=True)
class ColumnDiff:
    """How planned columns differ from a target's columns (name -> type)."""

    added: tuple[ColumnPlan, ...]  # planned, not in the target
    dropped: tuple[str, ...]  # in the target, not planned
    retyped: tuple[
        tuple[ColumnPlan, str], ...
    ]  # planned with a type the target's column cannot hold as it is

    @property
    def in_sync(self) -> bool:
        return not (self.added or self.dropped or self.retyped)


def diff_columns(columns: Sequence[ColumnPlan], existing: Mapping[str, str]) -> ColumnDiff:
    """Compare planned columns with a target's columns by name; `existing` maps each target column to its type."""
    planned_names = {column.target_name for column in columns}
    return ColumnDiff(
        added=tuple(column for column in columns if column.target_name not in existing),
        # fdm's own columns (`_fdm_...`) are not the source's, so never a dropped source column.
        dropped=tuple(name for name in existing if name not in planned_names and not is_fdm_column(name)),
        retyped=tuple(
            (column, existing[column.target_name])
            for column in columns
            if column.target_name in existing and not holds(existing[column.target_name], column.target_type)
        ),
    )


def plan_drift(
    spec: TableSpec, plan: TablePlan, target: TargetTable | None, *, full_load: bool = True
) -> DriftPlan:
    """Compare the planned columns with the target and decide, per the drift policy, what to load and alter.

    1. No target: create it (schema too) with the planned columns and the primary key.
    2. Otherwise classify each difference: added source column, dropped source column, changed type that
       the target cannot hold as it is.
    3. strict stops on any difference; evolve adds columns and widens types where a lossless common type
       exists (stops otherwise); ignore loads only the shared columns into the target's own types.

    Changes the configuration makes are not drift and apply under every policy: a blind index column is
    added; a column that becomes protected (or stops being) changes type, emptied first, which only a full
    load may do since it replaces every row (`full_load`).
    """
    if target is None:
        return _create_target(spec, plan)
    configured = _configuration_changes(spec, plan, target, full_load=full_load)
    existing_types = configured.existing_types
    diff = diff_columns(plan.columns, existing_types)
    if diff.in_sync:
        columns = tuple(_load_column(spec, c, existing_types[c.target_name]) for c in plan.columns)
        return DriftPlan(load_columns=columns, ddl=tuple(configured.ddl), changes=configured.changes)

    if spec.drift_policy == DriftPolicy.STRICT:
        raise SchemaDriftError(
            "the source's columns changed (drift policy strict): " + "; ".join(_differences(diff)),
            table=spec.name,
        )
    for name in diff.dropped:
        gone = target.column(name)
        if gone is not None and (gone.not_null or gone.name in target.primary_key):
            raise SchemaDriftError(
                f"column {gone.name} is no longer in the source but is NOT NULL in the target; "
                "drop it from the target or change the drift policy",
                table=spec.name,
            )
    drift = _follow_policy(spec, plan, diff, configured)
    for name in diff.dropped:
        drift.changes.append(f"column {name} is no longer in the source; kept, NULL in new rows")
    return drift


def _create_target(spec: TableSpec, plan: TablePlan) -> DriftPlan:
    schema, table = spec.target.schema, spec.target.table
    columns = tuple(_load_column(spec, column, column.target_type) for column in plan.columns)
    create_ddl = create_table_sql(
        schema,
        table,
        [(column.target_name, column.target_type) for column in plan.columns] + list(fdm_columns(spec)),
    )
    # The key is added once the rows are in: one index build is several times faster than maintaining the
    # index row by row, and nothing else can see the new table before the commit.
    key = target_key(spec, plan.target_primary_key)
    finish_ddl = (add_primary_key_sql(schema, table, key),) if plan.primary_key else ()
    return DriftPlan(load_columns=columns, ddl=(create_ddl,), finish_ddl=finish_ddl, creates_table=True)


@dataclass
class _Configured:
    """The target's column types once the configuration's own changes are applied, and those changes."""

    existing_types: dict[str, str]
    ddl: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)


def _configuration_changes(
    spec: TableSpec, plan: TablePlan, target: TargetTable, *, full_load: bool
) -> _Configured:
    """Blind index columns to add, and columns whose protection changed (which only a full load may retype)."""
    schema, table = spec.target.schema, spec.target.table
    configured = _Configured(existing_types={column.name: column.type for column in target.columns})
    existing_types = configured.existing_types
    for column in plan.columns:
        if column.derived and column.target_name not in existing_types:
            configured.ddl.append(add_column_sql(schema, table, column.target_name, column.target_type))
            configured.changes.append(f"added blind index column {column.target_name}")
            existing_types[column.target_name] = column.target_type
        elif column.target_name in existing_types and _protection_toggled(
            column, existing_types[column.target_name]
        ):
            became = "encrypted or compressed" if column.plain_type is not None else "stored in clear"
            if not full_load:
                raise SchemaDriftError(
                    f"the column is now {became}, which changes its type from {existing_types[column.target_name]} "
                    f"to {column.target_type}; only a full load can do that (sync with --full-refresh)",
                    table=spec.name,
                    column=column.target_name,
                )
            configured.ddl.append(
                alter_type_sql(schema, table, column.target_name, column.target_type, using_null=True)
            )
            configured.changes.append(
                f"column {column.target_name} is now {became}: its type changed from "
                f"{existing_types[column.target_name]} to {column.target_type} and the full load refills it"
            )
            existing_types[column.target_name] = column.target_type
    ddl, changes = columns_to_add(spec, target)
    configured.ddl.extend(ddl)
    configured.changes.extend(changes)
    return configured


def _differences(diff: ColumnDiff) -> list[str]:
    return (
        [f"new source column {column.source_name} ({column.source.display_type})" for column in diff.added]
        + [f"column {name} is no longer in the source" for name in diff.dropped]
        + [
            f"column {column.target_name} changed: source {column.source.display_type} needs {column.target_type}, "
            f"target has {existing_type}"
            for column, existing_type in diff.retyped
        ]
    )


def _follow_policy(spec: TableSpec, plan: TablePlan, diff: ColumnDiff, configured: _Configured) -> DriftPlan:
    """evolve or ignore: what each planned column is loaded into, and the DDL that gets it there."""
    key_names = set(plan.primary_key) | ({plan.watermark.source_name} if plan.watermark else set())
    drift = DriftPlan(load_columns=(), ddl=(), changes=list(configured.changes))
    ddl = list(configured.ddl)
    added_names = {column.target_name for column in diff.added}
    retyped_types = {column.target_name: existing_type for column, existing_type in diff.retyped}
    load_columns: list[LoadColumn] = []
    for column in plan.columns:
        if column.target_name in added_names:
            loaded = _added(
                spec, column, is_key=column.source_name in key_names, ddl=ddl, changes=drift.changes
            )
        elif column.target_name in retyped_types:
            loaded = _retyped(spec, column, retyped_types[column.target_name], ddl=ddl, changes=drift.changes)
        else:
            loaded = _load_column(spec, column, configured.existing_types[column.target_name])
        if loaded is not None:
            load_columns.append(loaded)
    drift.load_columns = tuple(load_columns)
    drift.ddl = tuple(ddl)
    return drift


def _added(
    spec: TableSpec, column: ColumnPlan, *, is_key: bool, ddl: list[str], changes: list[str]
) -> LoadColumn | None:
    if spec.drift_policy == DriftPolicy.IGNORE:
        if is_key:
            raise SchemaDriftError(
                "a key or incremental column is missing from the target (drift policy ignore)",
                table=spec.name,
                column=column.target_name,
            )
        changes.append(f"new source column {column.source_name} not loaded (drift policy ignore)")
        return None
    ddl.append(add_column_sql(spec.target.schema, spec.target.table, column.target_name, column.target_type))
    changes.append(f"added column {column.target_name} {column.target_type}")
    return _load_column(spec, column, column.target_type)


def _retyped(
    spec: TableSpec, column: ColumnPlan, existing_type: str, *, ddl: list[str], changes: list[str]
) -> LoadColumn:
    if spec.drift_policy == DriftPolicy.IGNORE:
        changes.append(
            f"column {column.target_name}: source {column.source.display_type} loaded into the target's "
            f"{existing_type} (drift policy ignore)"
        )
        return _load_column(spec, column, existing_type)
    new_type = widened(existing_type, column.target_type)
    if new_type is None:
        raise SchemaDriftError(
            f"incompatible type change: source {column.source.display_type} needs {column.target_type}, "
            f"target has {existing_type}; no lossless common type",
            table=spec.name,
            column=column.target_name,
        )
    ddl.append(alter_type_sql(spec.target.schema, spec.target.table, column.target_name, new_type))
    changes.append(f"widened column {column.target_name} from {existing_type} to {new_type}")
    return _load_column(spec, column, new_type)
