"""Rules that relate one key of a table to another, checked once the types are right.

Columns compare as Snowflake does: plain names ignore case (`txn_id` is `TXN_ID`), others match exactly.
"""

from __future__ import annotations

from collections.abc import Callable

from syncconfig.choices import SyncMode
from syncconfig.schema.document import CompressionBlock, EncryptionBlock, TableDocument
from syncconfig.schema.errors import format_path
from syncengine.pipeline.identifiers import snowflake_name


def key_rules(table: TableDocument) -> list[tuple[str, str]]:
    """Rules that relate one key to another. Columns compare as Snowflake does (plain names ignore case)."""
    problems: list[tuple[str, str]] = []
    key = snowflake_name
    primary_key = {key(c) for c in table.primary_key}
    watermark = key(table.incremental_column) if table.incremental_column else None

    def duplicates(path: str, names: list[str]) -> None:
        seen: dict[str, str] = {}
        for i, name in enumerate(names):
            if key(name) in seen:
                problems.append((f"{path}[{i}]", f"{name!r} is listed more than once"))
            seen.setdefault(key(name), name)

    if table.sync_mode == SyncMode.INCREMENTAL.value and not table.incremental_column:
        problems.append(("incremental_column", "is required when sync_mode is incremental"))
    if table.sync_mode == SyncMode.FULL.value and table.incremental_column:
        problems.append(
            (
                "incremental_column",
                "applies only when sync_mode is incremental; remove it or change sync_mode",
            )
        )
    duplicates("primary_key", table.primary_key)
    if table.freshness_sla is not None and table.max_staleness_minutes is not None:
        problems.append(("max_staleness_minutes", "is the older spelling of freshness_sla; give only one"))

    include: set[str] | None = None
    exclude: set[str] = set()
    if table.columns is not None:
        if table.columns.include is not None and table.columns.exclude is not None:
            problems.append(("columns", "set include or exclude, not both"))
        if table.columns.include is not None:
            duplicates("columns.include", table.columns.include)
            if not table.columns.include:
                problems.append(
                    ("columns.include", "must name at least one column (omit columns to copy all)")
                )
            include = {key(c) for c in table.columns.include}
        if table.columns.exclude is not None:
            duplicates("columns.exclude", table.columns.exclude)
            exclude = {key(c) for c in table.columns.exclude}

    def left_out(name: str) -> str | None:
        if key(name) in exclude:
            return f"{name!r} is excluded by columns.exclude"
        if include is not None and table.columns and table.columns.include and key(name) not in include:
            return f"{name!r} is not in columns.include"
        return None

    for i, name in enumerate(table.primary_key):
        if problem := left_out(name):
            problems.append((f"primary_key[{i}]", problem))
    if table.incremental_column and (problem := left_out(table.incremental_column)):
        problems.append(("incremental_column", problem))

    def kept_in_clear(path: str, name: str, what: str) -> None:
        if key(name) in primary_key:
            problems.append((path, f"{name!r} is part of the primary key, which cannot be {what}"))
        elif key(name) == watermark:
            problems.append((path, f"{name!r} is the incremental column, which cannot be {what}"))

    encryption = table.encryption
    if isinstance(encryption, EncryptionBlock):
        if encryption.all is False:
            problems.append(
                ("encryption.all", "must be true when given (use encryption: false to turn it off)")
            )
        if encryption.all and encryption.columns is not None:
            problems.append(("encryption", "set all or columns, not both"))
        elif not encryption.all and encryption.columns is None:
            problems.append(("encryption.columns", "is required unless all is true"))
        encrypted = {key(c) for c in encryption.columns or ()}
        if encryption.columns is not None:
            duplicates("encryption.columns", encryption.columns)
            if not encryption.columns:
                problems.append(
                    (
                        "encryption.columns",
                        "must name at least one column (use encryption: false to turn it off)",
                    )
                )
            for i, name in enumerate(encryption.columns):
                kept_in_clear(f"encryption.columns[{i}]", name, "encrypted")
                if problem := left_out(name):
                    problems.append((f"encryption.columns[{i}]", problem))
        duplicates("encryption.searchable", encryption.searchable)
        for i, name in enumerate(encryption.searchable):
            path = f"encryption.searchable[{i}]"
            if encryption.all:
                kept_in_clear(path, name, "encrypted, so it cannot be searchable")
                if problem := left_out(name):
                    problems.append((path, problem))
            elif encryption.columns is not None and key(name) not in encrypted:
                problems.append((path, f"{name!r} is not encrypted; list it in encryption.columns too"))

    compression = table.compression
    if isinstance(compression, CompressionBlock):
        duplicates("compression.columns", compression.columns)
        if not compression.columns:
            problems.append(
                (
                    "compression.columns",
                    "must name at least one column (use compression: false to turn it off)",
                )
            )
        for i, name in enumerate(compression.columns):
            kept_in_clear(f"compression.columns[{i}]", name, "compressed")
            if problem := left_out(name):
                problems.append((f"compression.columns[{i}]", problem))

    problems.extend(_clear_column_rules(table, left_out))

    sources: dict[str, str] = {}
    targets: dict[str, str] = {}
    for source, target in table.column_names.items():
        path = format_path(["column_names", source])
        if key(source) in sources:
            problems.append((path, f"{source!r} and {sources[key(source)]!r} name the same column"))
        sources.setdefault(key(source), source)
        if target in targets:
            problems.append((path, f"target name {target!r} is also given to {targets[target]!r}"))
        targets.setdefault(target, source)
        if problem := left_out(source):
            problems.append((path, problem))
    return problems


def _clear_column_rules(table: TableDocument, left_out: Callable[[str], str | None]) -> list[tuple[str, str]]:
    """An exception to the protection policy must be about a column this table reads and keeps in clear."""
    problems = []
    encryption = table.encryption
    encrypted = (
        {snowflake_name(c) for c in encryption.columns or ()}
        if isinstance(encryption, EncryptionBlock)
        else set()
    )
    encrypts_all = encryption is True or (isinstance(encryption, EncryptionBlock) and bool(encryption.all))
    kept_in_clear = {snowflake_name(c) for c in table.primary_key}
    if table.incremental_column:
        kept_in_clear.add(snowflake_name(table.incremental_column))
    seen: dict[str, str] = {}
    for name in table.clear_columns:
        path = format_path(["clear_columns", name])
        if snowflake_name(name) in seen:
            problems.append((path, f"{name!r} and {seen[snowflake_name(name)]!r} name the same column"))
        seen.setdefault(snowflake_name(name), name)
        if snowflake_name(name) in encrypted or (encrypts_all and snowflake_name(name) not in kept_in_clear):
            problems.append((path, f"{name!r} is encrypted by this table; remove it from clear_columns"))
        elif problem := left_out(name):
            problems.append((path, problem))
    return problems


def own_tables() -> frozenset[str]:
    """Django's own tables: a target named like one of them would overwrite fdm's database."""
    from django.apps import apps

    if not apps.ready:
        return frozenset()
    names = {model._meta.db_table for model in apps.get_models(include_auto_created=True)}
    return frozenset(names | {"django_migrations"})
