"""Which columns a check compares, under which names and kinds, read from the source and the target.

The columns are those a run would load (include/exclude, renames, the key), as `schema.columns` plans them;
columns fdm adds to the target (`_fdm_*`, blind indexes) are not compared. Soft-deleted rows and closed history
versions are left out on the target side when the table has those columns: the source holds neither.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from snowflake.connector import SnowflakeConnection

from syncengine.pipeline.errors import ConfigurationError
from syncengine.pipeline.extract import describe_source, qualified_source
from syncengine.pipeline.hooks import Log
from syncengine.pipeline.protection.catalog import CatalogTable, read_catalog
from syncengine.pipeline.reconcile.canonical import CompareColumn, kind_of
from syncengine.pipeline.schema.columns import plan_columns
from syncengine.pipeline.schema.target import TargetTable, inspect_target, qualified
from syncengine.pipeline.spec import TableSpec
from syncengine.pipeline.typemap import canonical_snowflake_type

SOFT_DELETED_COLUMN = "_fdm_deleted_at"
CURRENT_VERSION_COLUMN = "_fdm_is_current"


@dataclass(frozen=True)
class TableShape:
    name: str
    source_relation: str
    target_relation: str
    key: tuple[CompareColumn, ...]
    columns: tuple[CompareColumn, ...]  # the other compared columns, in source order
    key_types: tuple[str, ...]  # the target's types of the key columns, for binds
    target_filter: str  # SQL that keeps the target rows the source is compared with ("" for all)
    catalog: CatalogTable | None
    target: TargetTable
    skipped: tuple[str, ...] = ()  # source columns the target does not have (drift policy `ignore`)

    @property
    def hashed(self) -> tuple[CompareColumn, ...]:
        """Key and columns whose canonical text is hashed in SQL on both sides."""
        return self.key + tuple(column for column in self.columns if not column.in_memory)

    @property
    def in_memory(self) -> tuple[CompareColumn, ...]:
        """JSON, encrypted and compressed columns: fetched and compared as values (see `memory`)."""
        return tuple(column for column in self.columns if column.in_memory)


def table_shape(
    spec: TableSpec, *, source_conn: SnowflakeConnection, target_conn: psycopg.Connection, log: Log
) -> TableShape:
    """Read the source's columns and the target's table and catalog; refuse a table without a key or target."""
    described = describe_source(
        source_conn, spec.source, table=spec.name, log=log, want_key=not spec.primary_key
    )
    plan = plan_columns(spec, described.columns, described.declared_key)
    if not plan.primary_key:
        raise ConfigurationError(
            "reconciling needs a primary key (configure primary_key or declare one in Snowflake)",
            table=spec.name,
        )
    target = inspect_target(target_conn, spec.target.schema, spec.target.table)
    if target is None:
        raise ConfigurationError(
            f"{spec.target.schema}.{spec.target.table} does not exist yet: the table has not been synced",
            table=spec.name,
        )
    catalog = read_catalog(target_conn, spec.target.schema, spec.target.table)
    protected = catalog.by_target() if catalog else {}
    compared: dict[str, CompareColumn] = {}
    skipped: list[str] = []
    for column in plan.columns:
        if target.column(column.target_name) is None:
            skipped.append(column.source_name)
            continue
        compared[column.source_name] = CompareColumn(
            source_name=column.source_name,
            target_name=column.target_name,
            kind=kind_of(canonical_snowflake_type(column.source.data_type)),
            scale=column.source.scale or 0,
            protected=column.target_name in protected,
        )
    key = tuple(compared[name] for name in plan.primary_key)
    key_types = tuple(target.column(column.target_name).type for column in key)  # type: ignore[union-attr]
    filters = []
    if target.column(SOFT_DELETED_COLUMN) is not None:
        filters.append(f"{SOFT_DELETED_COLUMN} IS NULL")
    if target.column(CURRENT_VERSION_COLUMN) is not None:
        filters.append(CURRENT_VERSION_COLUMN)
    return TableShape(
        name=spec.name,
        source_relation=qualified_source(spec.source),
        target_relation=qualified(spec.target.schema, spec.target.table),
        key=key,
        columns=tuple(column for name, column in compared.items() if name not in plan.primary_key),
        key_types=key_types,
        target_filter=" AND ".join(filters),
        catalog=catalog,
        target=target,
        skipped=tuple(skipped),
    )
