"""Writes of table configuration: importing a YAML document, exporting one.

Admin views, API views and management commands call these and only render the result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from syncconfig import protection, selectors, source_checks, yaml_io
from syncconfig import schema as table_schema
from syncconfig.models import TableConfig
from syncconfig.schema import ConfigError

# simple_history keeps the change reason in a 100-character column.
MAX_CHANGE_REASON_LENGTH = 100


@dataclass(frozen=True)
class TableChange:
    """An existing table that an import changes: `{key path: (old value, new value)}`."""

    name: str
    changes: dict[str, tuple[Any, Any]]

    @property
    def fields(self) -> list[str]:
        return list(self.changes)


@dataclass
class ImportResult:
    """What an import did, or with `dry_run` would do. With any error, nothing was changed."""

    created: list[str] = field(default_factory=list)
    updated: list[TableChange] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[ConfigError] = field(default_factory=list)
    dry_run: bool = False
    env: str | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def has_changes(self) -> bool:
        return bool(self.created or self.updated or self.deleted)

    @property
    def digest(self) -> str:
        """A fingerprint of the planned changes, to confirm that a previewed plan is the one applied."""
        plan = {
            "created": self.created,
            "updated": {change.name: change.changes for change in self.updated},
            "deleted": self.deleted,
        }
        return hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()


def _change_reason(via: str, source: str, env: str | None) -> str:
    reason = f"{via} {source}" + (f" --env {env}" if env else "")
    return reason[:MAX_CHANGE_REASON_LENGTH]


def _mark(instance: TableConfig, *, reason: str | None, user: Any) -> None:
    """Tell simple_history why and by whom this instance changes."""
    if reason:
        instance._change_reason = reason[:MAX_CHANGE_REASON_LENGTH]
    if user is not None:  # otherwise the request's user, when there is one, is recorded
        instance._history_user = user


def _target_clashes(
    tables: list[table_schema.TableDocument], kept: Iterable[TableConfig], index_of: Mapping[str, int]
) -> list[ConfigError]:
    """Targets in the document already held by tables that the import leaves in place."""
    holders = {(t.postgres_schema, t.postgres_table): t.name for t in kept}
    errors = []
    for table in tables:
        holder = holders.get((table.postgres.schema_, table.postgres.table))
        if holder:
            message = (
                f"{table.postgres.schema_}.{table.postgres.table} is already the target of table {holder!r}, "
                "which is not in this document (prune would delete it)"
            )
            errors.append(ConfigError("postgres", message, table=table.name, index=index_of[table.name]))
    return errors


def _protection_problems(
    before: Mapping[str, Mapping[str, Any] | None],
    after: Mapping[str, Mapping[str, Any]],
    *,
    user: Any,
    index_of: Mapping[str, int],
) -> list[ConfigError]:
    """What an import that changes the tables in `before` (None: created) into `after` (absent: deleted) breaks
    of the protection rules (syncconfig.protection), each error under its table."""
    problems = []
    for name in sorted(before):
        found = [] if protection.may_weaken(user) else protection.weakenings(before[name], after.get(name))
        if name in after:
            found += protection.policy_gaps(after[name], after.values())
        problems += [
            ConfigError(error.field, error.message, table=name, index=index_of.get(name)) for error in found
        ]
    return problems


def _read_document(
    document: str | bytes | Mapping[str, Any], *, env: str | None, source: str, config_dir: Path
) -> tuple[Any, list[ConfigError]]:
    """The document as data, with the environment overlay merged in."""
    try:
        data = yaml_io.parse(document, source=source) if isinstance(document, str | bytes) else document
        if not env:
            return data, []
        overlay, label = yaml_io.load_overlay(env, config_dir)
    except yaml_io.YamlError as exc:
        return None, [exc.as_config_error()]
    return yaml_io.apply_overlay(data, overlay, source=label)


def _validated_tables(
    document: str | bytes | Mapping[str, Any],
    *,
    env: str | None,
    source: str,
    config_dir: Path,
    check_source: bool,
) -> tuple[list[table_schema.TableDocument], list[ConfigError]]:
    """Steps 1 and 2 of `tables_import`: the document's tables, or every problem found with them."""
    data, errors = _read_document(document, env=env, source=source, config_dir=config_dir)
    if errors:
        return [], errors
    tables, errors = table_schema.validate_document(data)
    if not errors and check_source:
        errors = source_checks.tables_check_source(tables=tables)
    return tables, errors


def tables_import(
    *,
    document: str | bytes | Mapping[str, Any],
    env: str | None = None,
    dry_run: bool = False,
    prune: bool = False,
    user: Any = None,
    source: str = "document",
    via: str = "import",
    config_dir: str | Path | None = None,
    expect_digest: str | None = None,
    check_source: bool = False,
) -> ImportResult:
    """Make the stored tables match a document (YAML text, or the same structure already parsed).

    1. Parse the document and merge the overlay `config_dir/environments/{env}.yaml` when `env` is given.
    2. Validate the whole document through the shared schema; on any error stop and report every one.
    3. In one transaction, with every stored table locked: work out which tables are created, updated (and
       which keys change), deleted (only with `prune`) or unchanged, and check that no target is held by a
       table the import leaves in place.
    4. Unless `dry_run`, apply the plan one instance at a time (deletes, updates, creates) so that every change
       is audited, with `user` as its author and "{via} {source}" as the change reason (for example
       "import_tables config/tables.yaml"), and the engine's signals keep schedules in step. Any exception rolls
       the whole import back.

    `source` names the document in messages (a path, an uploaded file's name); `via` names the channel.
    `expect_digest` (a previewed plan's `digest`) refuses to apply a plan that differs from the one previewed,
    because the stored tables changed in between. `check_source` also checks every table against its Snowflake
    source after step 2 (`source_checks`); a problem there stops the import like a schema error.
    """
    result = ImportResult(dry_run=dry_run, env=env or None)
    tables, errors = _validated_tables(
        document,
        env=env or None,
        source=source,
        config_dir=Path(config_dir or settings.FDM_CONFIG_DIR),
        check_source=check_source,
    )
    if errors:
        result.errors = errors
        return result

    index_of = {table.name: index for index, table in enumerate(tables)}
    with transaction.atomic():
        existing = {table.name: table for table in TableConfig.objects.select_for_update().order_by("name")}
        result.deleted = sorted(set(existing) - set(index_of)) if prune else []
        kept = [
            table for name, table in existing.items() if name not in index_of and name not in result.deleted
        ]
        result.errors = _target_clashes(tables, kept, index_of)
        if result.errors:
            result.deleted = []
            return result

        to_save: list[TableConfig] = []
        before: dict[str, dict[str, Any] | None] = {
            name: existing[name].to_table_dict() for name in result.deleted
        }
        for table in tables:
            instance = existing.get(table.name)
            if instance is None:
                result.created.append(table.name)
                instance = TableConfig()
            else:
                changes = table_schema.table_dict_changes(
                    instance.to_table_dict(), table_schema.table_to_dict(table)
                )
                if not changes:
                    result.unchanged.append(table.name)
                    continue
                result.updated.append(TableChange(table.name, changes))
            before[table.name] = instance.to_table_dict() if instance.pk else None
            instance.apply_table(table)
            to_save.append(instance)
        result.created.sort()
        result.updated.sort(key=lambda change: change.name)
        result.unchanged.sort()
        after = {table.name: table_schema.table_to_dict(table) for table in tables}
        after.update((table.name, table.to_table_dict()) for table in kept)
        result.errors = _protection_problems(before, after, user=user, index_of=index_of)
        if result.errors:
            return result
        if expect_digest is not None and expect_digest != result.digest:
            message = "the stored tables changed since the preview; review the new preview before applying it"
            result.errors = [ConfigError(field="", message=message)]
            return result
        if dry_run:
            return result

        reason = _change_reason(via, source, env)
        for name in result.deleted:
            _mark(existing[name], reason=reason, user=user)
            existing[name].delete()
        # Updates before creates: a new table may take a target that an updated one gives up.
        for instance in sorted(to_save, key=lambda t: (t.pk is None, t.name)):
            _mark(instance, reason=reason, user=user)
            instance.save()
    return result


def tables_export(*, names: Iterable[str] | None = None) -> str:
    """The YAML document for the stored tables (all, or the named ones), ready to import again."""
    return yaml_io.dump_tables(selectors.table_dicts(tables=selectors.table_list(names=names)))


class TableRejected(Exception):
    """A table dict that the shared schema or the stored tables refuse; `errors` name each key path."""

    def __init__(self, errors: list[ConfigError]):
        self.errors = errors
        super().__init__("; ".join(str(error) for error in errors))


class ProtectionDenied(TableRejected):
    """A change that weakens the protection of sensitive columns, by someone not allowed to (see protection)."""


def table_protection_check(
    *, table: TableConfig | None, user: Any, before: TableConfig | None = None
) -> None:
    """Refuse a save of `table` (None: the deletion of `before`) that breaks the protection rules.

    `before` defaults to the stored version of `table`. Raises ProtectionDenied when the change weakens
    protection and `user` may not, TableRejected when the table would keep in clear a column that another
    table encrypts (see syncconfig.protection).
    """
    if before is None and table is not None and table.pk is not None:
        before = TableConfig.objects.filter(pk=table.pk).first()
    after = table.to_table_dict() if table is not None else None
    if not protection.may_weaken(user):
        weakened = protection.weakenings(before.to_table_dict() if before else None, after)
        if weakened:
            raise ProtectionDenied(weakened)
    if after is not None:
        others = [t.to_table_dict() for t in selectors.tables_reading(after["snowflake"], exclude=table)]
        gaps = protection.policy_gaps(after, others)
        if gaps:
            raise TableRejected(gaps)


def table_delete_allowed(*, table: TableConfig, user: Any) -> bool:
    """Whether `user` may delete `table`: a table that encrypts columns only by whoever may weaken protection."""
    return protection.may_weaken(user) or not protection.weakenings(table.to_table_dict(), None)


def table_save(*, table: TableConfig, user: Any = None, reason: str | None = None) -> TableConfig:
    """Validate and save one table (admin and API edits), recording who changed it and why.

    `user` None is a trusted caller (a command on the server); any other must hold the permission to weaken
    protection for a change that does (syncconfig.protection).
    """
    table.full_clean()
    table_protection_check(table=table, user=user)
    _mark(table, reason=reason, user=user)
    table.save()
    return table


def table_delete(*, table: TableConfig, user: Any = None, reason: str | None = None) -> None:
    """Delete one table, recording who deleted it and why (an encrypting table: only by an admin)."""
    table_protection_check(table=None, before=table, user=user)
    _mark(table, reason=reason, user=user)
    table.delete()


def table_save_document(
    *,
    document: Mapping[str, Any],
    table: TableConfig | None = None,
    user: Any = None,
    reason: str | None = None,
) -> TableConfig:
    """Create a table from a table dict (the YAML shape), or replace every setting of `table` with it.

    1. Validate the dict through the shared schema, exactly as an import would (TableRejected on any problem).
    2. Apply it to the instance and save through `table_save`, which checks what needs the stored tables (a
       name or a target already taken) and records the change with `user` and `reason`. The model's errors
       are reported under the YAML's key paths as well.
    """
    from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

    validation = table_schema.validate_table(document)
    if validation.table is None:
        raise TableRejected(validation.errors)
    instance = table if table is not None else TableConfig()
    instance.apply_table(validation.table)
    try:
        with transaction.atomic():
            return table_save(table=instance, user=user, reason=reason)
    except ValidationError as exc:
        errors: list[ConfigError] = []
        for field_name, messages in exc.message_dict.items():
            path = "" if field_name == NON_FIELD_ERRORS else table_schema.path_for_field(field_name)
            errors.extend(ConfigError(field=path, message=message) for message in messages)
        if table is not None:
            table.refresh_from_db()  # the caller's instance must not keep the refused values
        raise TableRejected(errors) from None
