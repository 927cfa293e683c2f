"""Reads of table configuration."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db.models import QuerySet

from syncconfig.models import TableConfig


def table_list(*, enabled: bool | None = None, names: Iterable[str] | None = None) -> QuerySet[TableConfig]:
    """Tables in name order, optionally only the enabled (or disabled) ones, or only the named ones."""
    tables = TableConfig.objects.all()
    if enabled is not None:
        tables = tables.filter(enabled=enabled)
    if names is not None:
        tables = tables.filter(name__in=list(names))
    return tables.order_by("name")


def table_get(*, name: str) -> TableConfig:
    """The table with this name. Raises TableConfig.DoesNotExist."""
    return TableConfig.objects.get(name=name)


def table_dicts(*, tables: Iterable[TableConfig] | None = None) -> list[dict[str, Any]]:
    """Canonical table dicts (the YAML shape) for the given tables, or for all tables, in name order."""
    selected = table_list() if tables is None else sorted(tables, key=lambda table: table.name)
    return [table.to_table_dict() for table in selected]


def tables_reading(source: Mapping[str, str], *, exclude: TableConfig | None = None) -> QuerySet[TableConfig]:
    """Tables that may read the Snowflake table `source` ({database, schema, table}), but `exclude`.

    Matched ignoring case, a superset of Snowflake's rule (only plain names ignore case): callers compare the
    names exactly (syncconfig.protection).
    """
    tables = TableConfig.objects.filter(
        snowflake_database__iexact=source["database"],
        snowflake_schema__iexact=source["schema"],
        snowflake_table__iexact=source["table"],
    )
    if exclude is not None and exclude.pk is not None:
        tables = tables.exclude(pk=exclude.pk)
    return tables.order_by("name")
