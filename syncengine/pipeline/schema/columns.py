"""Column selection and naming: from the source's columns and the table's configuration to the plan of what is
loaded, under which target name and PostgreSQL type.

Configured names are resolved with `identifiers.find` (plain names are case-insensitive, others exact). A
configured name that matches nothing is an error, never silently skipped: an excluded column that is misspelt
would otherwise be loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncengine.pipeline import identifiers
from syncengine.pipeline.errors import ConfigurationError, SourceSchemaError
from syncengine.pipeline.spec import SyncMode, TableSpec
from syncengine.pipeline.typemap import SourceColumn, canonical_snowflake_type, postgres_type_for

# Types whose order is meaningful for a watermark (`cursor >= last value`).
WATERMARK_TYPES = {
    "NUMBER",
    "FLOAT",
    "TEXT",
    "DATE",
    "TIME",
    "TIMESTAMP_NTZ",
    "TIMESTAMP_TZ",
    "TIMESTAMP_LTZ",
}


@dataclass(frozen=True)
class ColumnPlan:
    """One loaded column: where it comes from, its target name, and the type the source calls for."""

    source: SourceColumn
    target_name: str
    target_type: str
    # Set for an encrypted or compressed column (stored as bytea): the type of its values before protection.
    plain_type: str | None = None
    # A column fdm computes (a blind index) rather than reads from the source.
    derived: bool = False

    @property
    def source_name(self) -> str:
        return self.source.name


@dataclass(frozen=True)
class TablePlan:
    columns: tuple[ColumnPlan, ...]
    primary_key: tuple[str, ...]  # source names, in key order
    watermark: ColumnPlan | None

    def by_source(self, source_name: str) -> ColumnPlan:
        for column in self.columns:
            if column.source_name == source_name:
                return column
        raise KeyError(source_name)

    @property
    def target_primary_key(self) -> tuple[str, ...]:
        return tuple(self.by_source(name).target_name for name in self.primary_key)


def _resolve(configured: str, actual_names: list[str], *, table: str, what: str) -> str:
    actual = identifiers.find(configured, actual_names)
    if actual is None:
        raise SourceSchemaError(f"{what} {configured!r} is not a column of the source table", table=table)
    return actual


def plan_columns(
    spec: TableSpec, source_columns: list[SourceColumn], declared_key: tuple[str, ...]
) -> TablePlan:
    """Select, name and type the columns to load; resolve the primary key and the watermark column.

    1. include (when given) then exclude, each name resolved against the source's columns;
    2. target names: `column_names` overrides, else upper-case plain names become lower case;
    3. primary key: as configured, else the source's declared key; it must be among the loaded columns;
    4. watermark column: required for incremental tables, loaded, and of an orderable type.
    """
    table = spec.name
    actual_names = [column.name for column in source_columns]
    by_name = {column.name: column for column in source_columns}
    selected = _selected(spec, actual_names)
    renames = _renames(spec, actual_names)
    plans: list[ColumnPlan] = []
    seen: dict[str, str] = {}
    for name in selected:
        target_name = renames.get(name, identifiers.postgres_default_name(name))
        if (problem := identifiers.identifier_problem(target_name, postgres=True)) is not None:
            raise ConfigurationError(
                f"target name {target_name!r} {problem}; set column_names", table=table, column=name
            )
        if target_name in seen:
            raise ConfigurationError(
                f"columns {seen[target_name]!r} and {name!r} would both be loaded as {target_name!r}; set column_names",
                table=table,
            )
        seen[target_name] = name
        source = by_name[name]
        plans.append(
            ColumnPlan(
                source=source, target_name=target_name, target_type=postgres_type_for(source, table=table)
            )
        )
    key = _primary_key(spec, actual_names, declared_key, plans)
    return TablePlan(columns=tuple(plans), primary_key=key, watermark=_watermark(spec, actual_names, plans))


def _selected(spec: TableSpec, actual_names: list[str]) -> list[str]:
    """The source columns left after include (when given) then exclude, in source order."""
    table = spec.name
    selected = list(actual_names)
    if spec.include_columns is not None:
        included = {
            _resolve(name, actual_names, table=table, what="included column") for name in spec.include_columns
        }
        selected = [name for name in selected if name in included]
    excluded = {
        _resolve(name, actual_names, table=table, what="excluded column") for name in spec.exclude_columns
    }
    selected = [name for name in selected if name not in excluded]
    if not selected:
        raise ConfigurationError("no columns are left to load after include/exclude", table=table)
    return selected


def _renames(spec: TableSpec, actual_names: list[str]) -> dict[str, str]:
    """`column_names`, keyed by the source's own spelling of each column."""
    renames: dict[str, str] = {}
    for configured, target_name in spec.column_names.items():
        actual = _resolve(configured, actual_names, table=spec.name, what="renamed column")
        if (problem := identifiers.identifier_problem(target_name, postgres=True)) is not None:
            raise ConfigurationError(f"target name {target_name!r} {problem}", table=spec.name, column=actual)
        renames[actual] = target_name
    return renames


def _primary_key(
    spec: TableSpec, actual_names: list[str], declared_key: tuple[str, ...], plans: list[ColumnPlan]
) -> tuple[str, ...]:
    """As configured, else the source's declared key; every key column must be loaded."""
    if spec.primary_key:
        key = tuple(
            _resolve(name, actual_names, table=spec.name, what="primary key column")
            for name in spec.primary_key
        )
    else:
        key = tuple(name for name in declared_key if name in actual_names)
    loaded = {plan.source_name for plan in plans}
    for name in key:
        if name not in loaded:
            raise ConfigurationError(
                "primary key column is excluded from loading", table=spec.name, column=name
            )
    return key


def _watermark(spec: TableSpec, actual_names: list[str], plans: list[ColumnPlan]) -> ColumnPlan | None:
    """The incremental column: required for incremental tables, loaded, and of an orderable type."""
    table = spec.name
    if not spec.watermark_column:
        if spec.mode == SyncMode.INCREMENTAL:
            raise ConfigurationError("incremental tables need an incremental column", table=table)
        return None
    name = _resolve(spec.watermark_column, actual_names, table=table, what="incremental column")
    plan = next((plan for plan in plans if plan.source_name == name), None)
    if plan is None:
        raise ConfigurationError("incremental column is excluded from loading", table=table, column=name)
    if canonical_snowflake_type(plan.source.data_type) not in WATERMARK_TYPES:
        raise ConfigurationError(
            f"incremental column has type {plan.source.data_type}, which has no usable order",
            table=table,
            column=name,
        )
    return plan
