"""Validation entry points: one table dict, or a whole document."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from pydantic import ValidationError

from syncconfig.schema.document import TABLE_NAME_PATTERN, TableDocument
from syncconfig.schema.errors import ConfigError, describe, format_path
from syncconfig.schema.messages import pydantic_problem
from syncconfig.schema.rules import key_rules, own_tables


class TableValidation(NamedTuple):
    table: TableDocument | None
    errors: list[ConfigError]


class DocumentValidation(NamedTuple):
    tables: list[TableDocument]
    errors: list[ConfigError]


def _name_of(data: Any) -> str | None:
    """The entry's name when it is a valid one, to label its errors."""
    if isinstance(data, Mapping):
        name = data.get("name")
        if isinstance(name, str) and TABLE_NAME_PATTERN.match(name):
            return name
    return None


def validate_table(data: Any, *, index: int | None = None) -> TableValidation:
    """Validate one table dict. Returns the parsed table (None when invalid) and every problem found."""
    name = _name_of(data)

    def error(path: str, message: str) -> ConfigError:
        return ConfigError(field=path, message=message, table=name, index=index)

    if not isinstance(data, Mapping):
        return TableValidation(None, [error("", f"must be a mapping, got {describe(data)}")])
    try:
        table = TableDocument.model_validate(dict(data))
    except ValidationError as exc:
        return TableValidation(None, [error(*pydantic_problem(e)) for e in exc.errors()])
    problems = key_rules(table)
    if table.postgres.schema_ == "public" and table.postgres.table in own_tables():
        problems.append(("postgres.table", f"public.{table.postgres.table} is one of fdm's own tables"))
    if problems:
        return TableValidation(None, [error(path, message) for path, message in problems])
    return TableValidation(table, [])


def validate_document(data: Any) -> DocumentValidation:
    """Validate a whole document (`{tables: [...]}`): every table, and names and targets across tables.

    Returns the parsed tables only when the whole document is valid, so that callers cannot act on part of it.
    """
    if not isinstance(data, Mapping):
        message = f"the document must be a mapping with a 'tables' list, got {describe(data)}"
        return DocumentValidation([], [ConfigError(field="", message=message)])
    errors = [
        ConfigError(field=format_path([str(key)]), message="unknown top-level key; allowed keys: tables")
        for key in data
        if key != "tables"
    ]
    entries = data.get("tables")
    if "tables" not in data:
        errors.append(ConfigError(field="tables", message="is required"))
        return DocumentValidation([], errors)
    if not isinstance(entries, list):
        errors.append(
            ConfigError(field="tables", message=f"must be a list of tables, got {describe(entries)}")
        )
        return DocumentValidation([], errors)

    tables: list[TableDocument] = []
    names: dict[str, int] = {}
    targets: dict[tuple[str, str], tuple[int, str]] = {}
    for index, entry in enumerate(entries):
        table, table_errors = validate_table(entry, index=index)
        errors.extend(table_errors)
        name = _name_of(entry)
        if name is not None:
            if name in names:
                message = f"{name!r} is already used by tables[{names[name]}]"
                errors.append(ConfigError(field="name", message=message, table=name, index=index))
            names.setdefault(name, index)
        if table is None:
            continue
        target = (table.postgres.schema_, table.postgres.table)
        if target in targets:
            first_index, first_name = targets[target]
            message = f"{target[0]}.{target[1]} is already the target of tables[{first_index}] {first_name}"
            errors.append(ConfigError(field="postgres", message=message, table=table.name, index=index))
        targets.setdefault(target, (index, table.name))
        tables.append(table)
    return DocumentValidation(tables if not errors else [], errors)
