"""Checking configured tables against their Snowflake source (`import_tables --check-source`).

Configuration never imports the engine's Django side; the engine registers the checker from its
`AppConfig.ready()` (`source_checker_register`), as the kit's registries do.
"""

from __future__ import annotations

from collections.abc import Callable

from syncconfig.models import TableConfig
from syncconfig.schema import ConfigError, TableDocument

# A table (saved or not) -> its problems as (configuration path or None, message).
SourceChecker = Callable[[TableConfig], list[tuple[str | None, str]]]

_checker: list[SourceChecker] = []


class SourceCheckUnavailable(Exception):
    """The source could not be reached or is not configured: nothing could be checked."""


def source_checker_register(checker: SourceChecker) -> None:
    _checker[:] = [checker]


def tables_check_source(*, tables: list[TableDocument]) -> list[ConfigError]:
    """Every problem the source shows with these tables, labelled like the schema's errors. Raises
    SourceCheckUnavailable when no checker is registered or the source cannot be reached."""
    if not _checker:
        raise SourceCheckUnavailable("no source checker is installed (the engine app is not loaded)")
    errors: list[ConfigError] = []
    for index, document in enumerate(tables):
        table = TableConfig.objects.filter(name=document.name).first() or TableConfig()
        table.apply_table(document)  # never saved: the import decides that
        errors.extend(
            ConfigError(field=path or "", message=message, table=document.name, index=index)
            for path, message in _checker[0](table)
        )
    return errors
