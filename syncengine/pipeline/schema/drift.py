"""Schema drift: how the source's columns differ from the existing target table, and what this run does
about it under the table's drift policy (see `spec.DriftPolicy`).

Drift is detected before anything is extracted. Its DDL (new columns, widened types, or the whole table when
it is missing) runs inside the publishing transaction, so a failed run leaves the target exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from syncengine.pipeline.errors import SchemaDriftError
from syncengine.pipeline.schema.columns import ColumnPlan, TablePlan
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
    schema, table = spec.target.schema, spec.target.table
    if target is None:
        columns = tuple(_load_column(spec, column, column.target_type) for column in plan.columns)
        create_ddl = create_table_sql(
            schema, table, [(column.target_name, column.target_type) for column in plan.columns]
        )
        # The key is added once the rows are in: one index build is several times faster than maintaining the
        # index row by row, and nothing else can see the new table before the commit.
        finish_ddl = (
            (add_primary_key_sql(schema, table, plan.target_primary_key),) if plan.primary_key else ()
        )
        return DriftPlan(load_columns=columns, ddl=(create_ddl,), finish_ddl=finish_ddl, creates_table=True)

    existing_types = {column.name: column.type for column in target.columns}
    planned_names = {column.target_name for column in plan.columns}
    config_ddl: list[str] = []
    config_changes: list[str] = []
    for column in plan.columns:
        if column.derived and column.target_name not in existing_types:
            config_ddl.append(add_column_sql(schema, table, column.target_name, column.target_type))
            config_changes.append(f"added blind index column {column.target_name}")
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
            config_ddl.append(
                alter_type_sql(schema, table, column.target_name, column.target_type, using_null=True)
            )
            config_changes.append(
                f"column {column.target_name} is now {became}: its type changed from "
                f"{existing_types[column.target_name]} to {column.target_type} and the full load refills it"
            )
            existing_types[column.target_name] = column.target_type
    added = [column for column in plan.columns if column.target_name not in existing_types]
    dropped = [column for column in target.columns if column.name not in planned_names]
    retyped = [
        (column, existing_types[column.target_name])
        for column in plan.columns
        if column.target_name in existing_types
        and not holds(existing_types[column.target_name], column.target_type)
    ]
    differences = (
        [f"new source column {column.source_name} ({column.source.display_type})" for column in added]
        + [f"column {column.name} is no longer in the source" for column in dropped]
        + [
            f"column {column.target_name} changed: source {column.source.display_type} needs {column.target_type}, "
            f"target has {existing_type}"
            for column, existing_type in retyped
        ]
    )
    if not differences:
        columns = tuple(_load_column(spec, c, existing_types[c.target_name]) for c in plan.columns)
        return DriftPlan(load_columns=columns, ddl=tuple(config_ddl), changes=config_changes)

    policy = spec.drift_policy
    if policy == DriftPolicy.STRICT:
        raise SchemaDriftError(
            "the source's columns changed (drift policy strict): " + "; ".join(differences), table=spec.name
        )

    for gone in dropped:
        if gone.not_null or gone.name in target.primary_key:
            raise SchemaDriftError(
                f"column {gone.name} is no longer in the source but is NOT NULL in the target; "
                "drop it from the target or change the drift policy",
                table=spec.name,
            )

    key_names = set(plan.primary_key) | ({plan.watermark.source_name} if plan.watermark else set())
    ddl: list[str] = list(config_ddl)
    changes: list[str] = list(config_changes)
    added_names = {column.target_name for column in added}
    retyped_types = {column.target_name: existing_type for column, existing_type in retyped}
    load_columns: list[LoadColumn] = []
    for column in plan.columns:
        if column.target_name in added_names:
            if policy == DriftPolicy.IGNORE:
                if column.source_name in key_names:
                    raise SchemaDriftError(
                        "a key or incremental column is missing from the target (drift policy ignore)",
                        table=spec.name,
                        column=column.target_name,
                    )
                changes.append(f"new source column {column.source_name} not loaded (drift policy ignore)")
                continue
            ddl.append(
                add_column_sql(spec.target.schema, spec.target.table, column.target_name, column.target_type)
            )
            changes.append(f"added column {column.target_name} {column.target_type}")
            load_columns.append(_load_column(spec, column, column.target_type))
        elif column.target_name in retyped_types:
            existing_type = retyped_types[column.target_name]
            if policy == DriftPolicy.IGNORE:
                changes.append(
                    f"column {column.target_name}: source {column.source.display_type} loaded into the target's "
                    f"{existing_type} (drift policy ignore)"
                )
                load_columns.append(_load_column(spec, column, existing_type))
                continue
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
            load_columns.append(_load_column(spec, column, new_type))
        else:
            load_columns.append(_load_column(spec, column, existing_types[column.target_name]))
    for gone in dropped:
        changes.append(f"column {gone.name} is no longer in the source; kept, NULL in new rows")
    return DriftPlan(load_columns=tuple(load_columns), ddl=tuple(ddl), changes=changes)
