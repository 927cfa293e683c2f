"""Who may weaken the protection of sensitive columns, and the per-source protection policy.

Encrypted columns are why a finance team trusts fdm with a copy: no role below admin may get them in clear.
Two rules, applied by the services to every change whatever its channel (admin, API, YAML import):

1. A change that weakens protection needs the `syncconfig.change_protection` permission (the admin role):
   encryption turned off, a column taken out of encryption or out of `searchable`, an encrypting table renamed,
   retargeted or deleted, an exception added to or changed in `clear_columns`.
2. Once a source column is encrypted by one table, every other table that reads it must encrypt it too, unless
   the table records an exception with its reason in `clear_columns` (which, by rule 1, only an admin can do).

The run applies rule 2 again when it plans (see `syncengine.specs`), so a table configured before the policy
or before another table started encrypting its source cannot write a protected column in clear.

Everything here works on canonical table dicts (`TableConfig.to_table_dict()`, `schema.table_to_dict`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from syncconfig.schema import ConfigError
from syncengine.pipeline.identifiers import snowflake_name

PERMISSION = "syncconfig.change_protection"
NEEDS_ADMIN = "needs the admin role (permission change_protection)"


@dataclass(frozen=True)
class Protection:
    """What one table encrypts, keyed by Snowflake's rules for names (plain names ignore case)."""

    name: str
    source: tuple[str, str, str]
    target: tuple[str, str]
    encrypts_all: bool
    # The columns `encryption` lists; with encrypts_all, the ones the table keeps in clear (key, incremental).
    listed: frozenset[str]
    searchable: frozenset[str]
    clear: Mapping[str, str]  # exceptions to the policy: key -> reason
    include: frozenset[str] | None
    exclude: frozenset[str]
    names: Mapping[str, str]  # key -> the column's name as configured, for messages

    @classmethod
    def of(cls, table: Mapping[str, Any]) -> Protection:
        key = snowflake_name
        names: dict[str, str] = {}

        def keys(columns: Iterable[str]) -> frozenset[str]:
            for column in columns:
                names.setdefault(key(column), column)
            return frozenset(key(column) for column in columns)

        encryption = table.get("encryption", False)
        block = encryption if isinstance(encryption, Mapping) else {}
        encrypts_all = encryption is True or bool(block.get("all"))
        in_clear = [*table.get("primary_key", ())]
        if table.get("incremental_column"):
            in_clear.append(table["incremental_column"])
        columns = table.get("columns") or {}
        clear: Mapping[str, str] = table.get("clear_columns") or {}
        keys(clear)  # their names, for messages
        snowflake, postgres = table["snowflake"], table["postgres"]
        return cls(
            name=table["name"],
            source=(key(snowflake["database"]), key(snowflake["schema"]), key(snowflake["table"])),
            target=(postgres["schema"], postgres["table"]),
            encrypts_all=encrypts_all,
            listed=keys(in_clear if encrypts_all else block.get("columns") or ()),
            searchable=keys(block.get("searchable") or ()),
            clear={key(column): reason for column, reason in clear.items()},
            include=keys(columns["include"]) if columns.get("include") else None,
            exclude=keys(columns.get("exclude") or ()),
            names=names,
        )

    @property
    def encrypts_any(self) -> bool:
        return self.encrypts_all or bool(self.listed)

    def reads(self, column: str) -> bool:
        return column not in self.exclude and (self.include is None or column in self.include)

    def encrypts(self, column: str) -> bool:
        return (column not in self.listed) if self.encrypts_all else (column in self.listed)

    def label(self, column: str) -> str:
        return self.names.get(column, column)


def may_weaken(user: Any) -> bool:
    """Whether `user` may weaken protection. None is a trusted caller: a command run on the server's shell."""
    return user is None or bool(user.has_perm(PERMISSION))


def weakenings(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[ConfigError]:
    """How the change from `before` to `after` (None: absent) weakens protection, each under its key path."""
    if before is None:
        new = Protection.of(after) if after is not None else None
        return (
            [_weakening("clear_columns", f"{new.label(c)!r} kept in clear") for c in new.clear] if new else []
        )
    old = Protection.of(before)
    if after is None:
        return [_weakening("", "deleting a table that encrypts columns")] if old.encrypts_any else []
    new = Protection.of(after)
    found: list[ConfigError] = []
    if old.encrypts_any and not new.encrypts_any:
        found.append(_weakening("encryption", "turning encryption off"))
    elif old.encrypts_all and not new.encrypts_all:
        found.append(_weakening("encryption", "encrypting listed columns instead of every column"))
    elif new.encrypts_any:
        # Columns that were encrypted and no longer are (with `all`: columns newly kept in clear).
        dropped = new.listed - old.listed if old.encrypts_all else old.listed - new.listed
        found += [_weakening("encryption", f"{old.label(c)!r} no longer encrypted") for c in sorted(dropped)]
    found += [
        _weakening("encryption.searchable", f"{old.label(c)!r} no longer searchable")
        for c in sorted(old.searchable - new.searchable)
    ]
    if old.encrypts_any and old.name != new.name:
        found.append(_weakening("name", "renaming a table that encrypts columns"))
    if old.encrypts_any and old.target != new.target:
        found.append(_weakening("postgres", "moving a table that encrypts columns to another target"))
    found += [
        _weakening("clear_columns", f"{new.label(c)!r} kept in clear")
        for c, reason in new.clear.items()
        if old.clear.get(c) != reason
    ]
    return found


def _weakening(path: str, what: str) -> ConfigError:
    return ConfigError(
        field=path, message=f"{what} weakens the protection of sensitive columns and {NEEDS_ADMIN}"
    )


def policy_gaps(table: Mapping[str, Any], others: Iterable[Mapping[str, Any]]) -> list[ConfigError]:
    """Columns `table` would keep in clear although another table on the same source encrypts them."""
    own = Protection.of(table)
    gaps: dict[str, str] = {}
    for other in map(Protection.of, others):
        if other.name == own.name or other.source != own.source or not other.encrypts_any:
            continue
        if own.encrypts_all:
            candidates: Iterable[str] = own.listed  # the columns this table keeps in clear
        elif not other.encrypts_all:
            candidates = other.listed
        elif own.include is not None:
            candidates = own.include
        else:  # every column of the source is encrypted there, and this table reads columns it cannot list
            gaps.setdefault(
                "*",
                f"table {other.name!r} encrypts every column of this source except its key and incremental "
                "column; encrypt every column here too (encryption: true)",
            )
            continue
        for column in sorted(candidates):
            if (
                other.encrypts(column)
                and own.reads(column)
                and not own.encrypts(column)
                and column not in own.clear
            ):
                label = own.label(column) if column in own.names else other.label(column)
                gaps.setdefault(
                    column, f"{label!r} is encrypted by table {other.name!r}; encrypt it here too"
                )
    return [
        ConfigError(
            field="encryption",
            message=f"{message}, or record an exception with its reason in clear_columns ({NEEDS_ADMIN})",
        )
        for message in gaps.values()
    ]
