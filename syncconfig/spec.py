"""The one validation schema for table configuration.

A table's configuration enters fdm three ways: a YAML file (`import_tables`, the admin's import page), the admin
form, and the REST API. All of them validate through this module, so a table that one of them accepts, all
accept, and every rejection reads the same:

    tables[2] market_data.sync_mode: must be one of: full, incremental; got string 'fulll'

The schema works on the "table dict": the shape of one entry of `config/tables.yaml` (see
docs/configuration.md). Pydantic checks shape and types strictly (no coercion of "yes" to true or 1 to "1");
the rules that relate one key to another are plain functions below, so that each error points at the exact key
and list item it is about.

Public surface:
- `validate_table(data)` and `validate_document(data)` return the parsed tables and a list of `ConfigError`.
- `table_dict_from_model(instance)` turns a `TableConfig` (or anything with its field names) into a table dict.
- `model_fields_from_table(table)` gives the model field values for a validated table.
- `table_to_dict(table)` is the canonical dict (fixed key order, defaults omitted) that export writes.
- `table_dict_changes(old, new)` lists what differs between two table dicts, key by key.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NamedTuple, get_args

from croniter import CroniterBadCronError, CroniterBadDateError, croniter
from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError
from pydantic_core import PydanticCustomError

from syncconfig.choices import CompressionMode, DriftPolicy, EncryptionMode, ScheduleKind, SyncMode
from syncengine.pipeline.identifiers import identifier_problem, is_plain, snowflake_name

TABLE_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_TABLE_NAME_LENGTH = 63  # the name also names schedules and locks; keep it within a PostgreSQL identifier

DEFAULT_SYNC_MODE = SyncMode.FULL.value
# A new table never starts pulling from Snowflake on its own until someone picks a schedule.
DEFAULT_SCHEDULE = ScheduleKind.MANUAL.value
DEFAULT_DRIFT_POLICY = DriftPolicy.EVOLVE.value
DEFAULT_BATCH_SIZE = 100_000
MIN_BATCH_SIZE = 1
MAX_BATCH_SIZE = 1_000_000  # bounds the memory of one Arrow batch in the transform stage
CRON_FIELDS = 5  # minute hour day-of-month month day-of-week; the scheduler works to the minute
MAX_SCHEDULE_LENGTH = 100  # the column's size, and django-q2's
MAX_STALENESS_MINUTES = 366 * 24 * 60  # a year: anything longer is not a freshness limit

SyncModeValue = Literal["full", "incremental"]
DriftPolicyValue = Literal["evolve", "strict", "ignore"]

# The model's field names, in the order the admin shows them; `table_dict_from_model` reads exactly these.
MODEL_FIELDS = (
    "name",
    "snowflake_database",
    "snowflake_schema",
    "snowflake_table",
    "postgres_schema",
    "postgres_table",
    "sync_mode",
    "incremental_column",
    "schedule",
    "primary_key",
    "include_columns",
    "exclude_columns",
    "encryption_mode",
    "encrypted_columns",
    "searchable_columns",
    "compression_mode",
    "compressed_columns",
    "column_names",
    "schema_drift",
    "batch_size",
    "max_staleness_minutes",
    "enabled",
    "notes",
)


@dataclass(frozen=True)
class ConfigError:
    """One problem with a configuration: where it is and what is wrong.

    `field` is the path of the key inside the table (`sync_mode`, `encryption.searchable[0]`), or inside the
    document for problems that belong to no table. `index` is the table's position in the document's `tables`
    list and `table` its name, when known. `source` names the file when more than one file is involved.
    """

    field: str
    message: str
    table: str | None = None
    index: int | None = None
    source: str | None = None

    @property
    def location(self) -> str:
        base = ""
        if self.index is not None:
            base = f"tables[{self.index}]" + (f" {self.table}" if self.table else "")
        elif self.table:
            base = self.table
        if self.field:
            base = f"{base}.{self.field}" if base else self.field
        if self.source:
            base = f"{self.source}: {base}" if base else self.source
        return base

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("fdm", "{message}", {"message": message})


def _name_problem(value: str, *, postgres: bool) -> str | None:
    problem = identifier_problem(value, postgres=postgres)
    if problem:
        return problem
    if value != value.strip():
        return f"must not start or end with whitespace; got {value!r}"
    if not value.isprintable():
        return f"must contain only printable characters; got {value!r}"
    return None


def _snowflake_identifier(value: str) -> str:
    problem = _name_problem(value, postgres=False)
    if problem:
        raise _fail(problem)
    return value


def _postgres_identifier(value: str) -> str:
    problem = _name_problem(value, postgres=True)
    if problem:
        raise _fail(problem)
    return value


def _postgres_schema(value: str) -> str:
    _postgres_identifier(value)
    if value.lower().startswith("pg_") or value.lower() == "information_schema":
        raise _fail(f"{value!r} is reserved by PostgreSQL")
    return value


def _table_name(value: str) -> str:
    if not TABLE_NAME_PATTERN.match(value):
        raise _fail(
            f"must start with a lower-case letter and contain only lower-case letters, digits and _; got {value!r}"
        )
    if len(value) > MAX_TABLE_NAME_LENGTH:
        raise _fail(f"must be at most {MAX_TABLE_NAME_LENGTH} characters long; got {len(value)}")
    return value


def schedule_problem(value: str) -> str | None:
    """Why `value` is not a schedule (hourly, daily, manual or a cron expression), or None when it is."""
    if value in ScheduleKind.keywords():
        return None
    if len(value) > MAX_SCHEDULE_LENGTH:
        return f"must be at most {MAX_SCHEDULE_LENGTH} characters long; got {len(value)}"
    if value != value.strip():
        return f"must not start or end with whitespace; got {value!r}"
    # croniter also accepts 6 and 7 fields (seconds, years), which a minute-level scheduler cannot honour.
    if not value.startswith("@") and len(value.split()) != CRON_FIELDS:
        return (
            "must be hourly, daily, manual or a cron expression with 5 fields "
            f"(minute hour day-of-month month day-of-week); got {value!r}"
        )
    try:
        croniter(value, datetime.datetime(2000, 1, 1)).get_next(datetime.datetime)
    except CroniterBadDateError:
        return f"cron expression {value!r} never fires"
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        return f"invalid cron expression {value!r}: {exc}"
    return None


def _notes(value: str) -> str:
    if "\x00" in value:
        raise _fail("must not contain a NUL character")  # PostgreSQL text cannot hold one
    return value


def _schedule(value: str) -> str:
    problem = schedule_problem(value)
    if problem:
        raise _fail(problem)
    return value


SnowflakeName = Annotated[str, AfterValidator(_snowflake_identifier)]
PostgresName = Annotated[str, AfterValidator(_postgres_identifier)]
PostgresSchema = Annotated[str, AfterValidator(_postgres_schema)]
TableName = Annotated[str, AfterValidator(_table_name)]
Schedule = Annotated[str, AfterValidator(_schedule)]
Notes = Annotated[str, AfterValidator(_notes)]


class _Strict(BaseModel):
    # strict: YAML's 1 stays an integer and "yes" stays a string, so a wrong type is reported, not coerced.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class SnowflakeSource(_Strict):
    database: SnowflakeName
    schema_: SnowflakeName = Field(alias="schema")
    table: SnowflakeName


class PostgresTarget(_Strict):
    schema_: PostgresSchema = Field(alias="schema")
    table: PostgresName


class ColumnSelection(_Strict):
    include: list[SnowflakeName] | None = None
    exclude: list[SnowflakeName] | None = None


class EncryptionBlock(_Strict):
    all: bool | None = None  # `{all: true, searchable: [...]}`: every column, some of them searchable
    columns: list[SnowflakeName] | None = None
    searchable: list[SnowflakeName] = []


class CompressionBlock(_Strict):
    columns: list[SnowflakeName]


def _flag_or_mapping(value: Any) -> str | None:
    if isinstance(value, bool):
        return "flag"
    if isinstance(value, dict):
        return "block"
    return None


def _flag_or(block: type[_Strict]) -> Any:
    return Annotated[
        Annotated[bool, Tag("flag")] | Annotated[block, Tag("block")],
        Discriminator(
            _flag_or_mapping,
            custom_error_type="flag_or_mapping",
            custom_error_message="must be true, false or a mapping",
        ),
    ]


class TableDocument(_Strict):
    """One table as the YAML file, the admin form and the API describe it (keys: docs/configuration.md)."""

    name: TableName
    snowflake: SnowflakeSource
    postgres: PostgresTarget
    sync_mode: SyncModeValue = DEFAULT_SYNC_MODE
    incremental_column: SnowflakeName | None = None
    schedule: Schedule = DEFAULT_SCHEDULE
    primary_key: list[SnowflakeName] = []
    columns: ColumnSelection | None = None
    encryption: _flag_or(EncryptionBlock) = False
    compression: _flag_or(CompressionBlock) = False
    column_names: dict[SnowflakeName, PostgresName] = {}
    schema_drift: DriftPolicyValue = DEFAULT_DRIFT_POLICY
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=MIN_BATCH_SIZE, le=MAX_BATCH_SIZE)
    max_staleness_minutes: int | None = Field(default=None, ge=1, le=MAX_STALENESS_MINUTES)
    enabled: bool = True
    notes: Notes = ""


def _keys(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(field.alias or name for name, field in model.model_fields.items())


TABLE_KEYS = _keys(TableDocument)
# The keys allowed in each nested mapping, to list them when a key is unknown.
_ALLOWED_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {
    (): TABLE_KEYS,
    ("snowflake",): _keys(SnowflakeSource),
    ("postgres",): _keys(PostgresTarget),
    ("columns",): _keys(ColumnSelection),
    ("encryption",): _keys(EncryptionBlock),
    ("compression",): _keys(CompressionBlock),
}
_CHOICES = {"sync_mode": get_args(SyncModeValue), "schema_drift": get_args(DriftPolicyValue)}
_UNION_TAGS = {"flag", "block"}


# --- error messages ---------------------------------------------------------------------------------------


def describe(value: Any) -> str:
    """A value as an error message shows it: its YAML type, and the value itself when it is short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean true" if value else "boolean false"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"string {shown!r}"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def format_path(parts: Iterable[str | int]) -> str:
    """`('encryption', 'columns', 0)` -> `encryption.columns[0]`; keys that are not plain names are quoted."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif is_plain(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def _pydantic_error(error: Any) -> tuple[str, str]:
    """(path, message) for one pydantic error, in fdm's words."""
    loc: list[str | int] = []
    is_key = False
    for part in error["loc"]:
        if part == "[key]":
            is_key = True
        elif part in _UNION_TAGS and loc and loc[-1] in ("encryption", "compression"):
            continue  # the union branch pydantic tried is noise to a reader
        else:
            loc.append(part)
    kind, value, ctx = error["type"], error["input"], error.get("ctx") or {}
    got = describe(value)
    if kind == "missing":
        message = "is required"
    elif kind == "extra_forbidden":
        allowed = _ALLOWED_KEYS.get(tuple(p for p in loc[:-1] if isinstance(p, str)), ())
        message = "unknown key" + (f"; allowed keys: {', '.join(allowed)}" if allowed else "")
    elif kind == "string_type":
        message = f"must be a string, got {got}"
    elif kind == "bool_type":
        message = f"must be true or false, got {got}"
    elif kind == "int_type":
        message = f"must be an integer, got {got}"
    elif kind == "list_type":
        message = f"must be a list of strings, got {got}"
    elif kind in ("dict_type", "model_type"):
        message = f"must be a mapping, got {got}"
    elif kind == "literal_error":
        options = _CHOICES.get(str(loc[-1]) if loc else "", ())
        message = f"must be one of: {', '.join(options)}; got {got}"
    elif kind == "greater_than_equal":
        message = f"must be at least {ctx['ge']}, got {value}"
    elif kind == "less_than_equal":
        message = f"must be at most {ctx['le']}, got {value}"
    elif kind == "flag_or_mapping":
        message = f"must be true, false or a mapping, got {got}"
    elif kind == "fdm":
        message = ctx["message"]
    else:
        message = error["msg"]
    if is_key:
        message = f"key {message}"
    return format_path(loc), message


# --- rules between keys -----------------------------------------------------------------------------------


def _column_rules(table: TableDocument) -> list[tuple[str, str]]:
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

    if table.sync_mode == SyncMode.INCREMENTAL and not table.incremental_column:
        problems.append(("incremental_column", "is required when sync_mode is incremental"))
    if table.sync_mode == SyncMode.FULL and table.incremental_column:
        problems.append(
            (
                "incremental_column",
                "applies only when sync_mode is incremental; remove it or change sync_mode",
            )
        )
    duplicates("primary_key", table.primary_key)

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


def _own_tables() -> frozenset[str]:
    """Django's own tables: a target named like one of them would overwrite fdm's database."""
    from django.apps import apps

    if not apps.ready:
        return frozenset()
    names = {model._meta.db_table for model in apps.get_models(include_auto_created=True)}
    return frozenset(names | {"django_migrations"})


# --- validation entry points ------------------------------------------------------------------------------


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
        return TableValidation(None, [error(*_pydantic_error(e)) for e in exc.errors()])
    problems = _column_rules(table)
    if table.postgres.schema_ == "public" and table.postgres.table in _own_tables():
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


# --- conversions ------------------------------------------------------------------------------------------


def model_fields_from_table(table: TableDocument) -> dict[str, Any]:
    """The `TableConfig` field values for a validated table; every field is set, so applying them overwrites."""
    encryption = table.encryption
    if encryption is True:
        encryption_mode, encrypted, searchable = EncryptionMode.ALL, [], []
    elif encryption is False:
        encryption_mode, encrypted, searchable = EncryptionMode.OFF, [], []
    elif encryption.all:
        encryption_mode, encrypted, searchable = EncryptionMode.ALL, [], list(encryption.searchable)
    else:
        encryption_mode = EncryptionMode.COLUMNS
        encrypted, searchable = list(encryption.columns or ()), list(encryption.searchable)
    compression = table.compression
    if compression is True:
        compression_mode, compressed = CompressionMode.AUTO, []
    elif compression is False:
        compression_mode, compressed = CompressionMode.OFF, []
    else:
        compression_mode, compressed = CompressionMode.COLUMNS, list(compression.columns)
    columns = table.columns or ColumnSelection()
    return {
        "name": table.name,
        "snowflake_database": table.snowflake.database,
        "snowflake_schema": table.snowflake.schema_,
        "snowflake_table": table.snowflake.table,
        "postgres_schema": table.postgres.schema_,
        "postgres_table": table.postgres.table,
        "sync_mode": table.sync_mode,
        "incremental_column": table.incremental_column or "",
        "schedule": table.schedule,
        "primary_key": list(table.primary_key),
        "include_columns": list(columns.include or ()),
        "exclude_columns": list(columns.exclude or ()),
        "encryption_mode": encryption_mode.value,
        "encrypted_columns": encrypted,
        "searchable_columns": searchable,
        "compression_mode": compression_mode.value,
        "compressed_columns": compressed,
        "column_names": dict(table.column_names),
        "schema_drift": table.schema_drift,
        "batch_size": table.batch_size,
        "max_staleness_minutes": table.max_staleness_minutes,
        "enabled": table.enabled,
        "notes": table.notes,
    }


def _copy(value: Any) -> Any:
    """A fresh list or dict, or the value itself when it has another type (validation will report it)."""
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def table_dict_from_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical table dict for model field values: keys in a fixed order, defaults left out.

    `name`, `snowflake`, `postgres`, `sync_mode`, `schedule`, `encryption` and `compression` are always written,
    as in the seed format; `encryption: true` stays `true`. Field values that contradict each other (an include
    and an exclude list, a column list next to `all`) are written as they are, so that validating the dict
    reports them instead of hiding them.
    """
    table: dict[str, Any] = {
        "name": fields["name"],
        "snowflake": {
            "database": fields["snowflake_database"],
            "schema": fields["snowflake_schema"],
            "table": fields["snowflake_table"],
        },
        "postgres": {"schema": fields["postgres_schema"], "table": fields["postgres_table"]},
        "sync_mode": fields["sync_mode"],
    }
    if fields["incremental_column"]:
        table["incremental_column"] = fields["incremental_column"]
    table["schedule"] = fields["schedule"]
    if fields["primary_key"]:
        table["primary_key"] = _copy(fields["primary_key"])
    columns: dict[str, Any] = {}
    if fields["include_columns"]:
        columns["include"] = _copy(fields["include_columns"])
    if fields["exclude_columns"]:
        columns["exclude"] = _copy(fields["exclude_columns"])
    if columns:
        table["columns"] = columns

    encrypted, searchable = (
        _copy(fields["encrypted_columns"] or []),
        _copy(fields["searchable_columns"] or []),
    )
    mode = fields["encryption_mode"]
    if mode == EncryptionMode.ALL:
        block: dict[str, Any] = {"all": True}
        if encrypted:
            block["columns"] = encrypted
        if searchable:
            block["searchable"] = searchable
        table["encryption"] = True if len(block) == 1 else block
    elif mode == EncryptionMode.COLUMNS:
        table["encryption"] = {"columns": encrypted, **({"searchable": searchable} if searchable else {})}
    else:
        table["encryption"] = False

    mode = fields["compression_mode"]
    if mode == CompressionMode.AUTO:
        table["compression"] = True
    elif mode == CompressionMode.COLUMNS:
        table["compression"] = {"columns": _copy(fields["compressed_columns"] or [])}
    else:
        table["compression"] = False

    if fields["column_names"]:
        names = fields["column_names"]
        # Sorted: the database's jsonb does not keep key order, and a stable export must not depend on it.
        table["column_names"] = dict(sorted(names.items())) if isinstance(names, Mapping) else names
    if fields["schema_drift"] != DEFAULT_DRIFT_POLICY:
        table["schema_drift"] = fields["schema_drift"]
    if fields["batch_size"] != DEFAULT_BATCH_SIZE:
        table["batch_size"] = fields["batch_size"]
    if fields["max_staleness_minutes"] is not None:
        table["max_staleness_minutes"] = fields["max_staleness_minutes"]
    if not fields["enabled"]:
        table["enabled"] = False
    if fields["notes"]:
        table["notes"] = fields["notes"]
    return table


def table_dict_from_model(instance: Any) -> dict[str, Any]:
    """The canonical table dict for a `TableConfig` (read by attribute, so a form's instance works too)."""
    return table_dict_from_fields({name: getattr(instance, name) for name in MODEL_FIELDS})


def table_to_dict(table: TableDocument) -> dict[str, Any]:
    """The canonical table dict for a validated table: what export writes and import compares against."""
    return table_dict_from_fields(model_fields_from_table(table))


# The value an absent key stands for, to show a change from or to a default as a plain value.
KEY_DEFAULTS: dict[str, Any] = {
    "incremental_column": None,
    "primary_key": [],
    "columns": None,
    "column_names": {},
    "schema_drift": DEFAULT_DRIFT_POLICY,
    "batch_size": DEFAULT_BATCH_SIZE,
    "max_staleness_minutes": None,
    "enabled": True,
    "notes": "",
}


def table_dict_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """What differs between two canonical table dicts: `{key path: (old value, new value)}` in key order.

    `snowflake` and `postgres` are compared key by key (`snowflake.table`), everything else as a whole.
    """
    changes: dict[str, tuple[Any, Any]] = {}
    keys = list(TABLE_KEYS) + [k for k in (*old, *new) if k not in TABLE_KEYS]
    for key in keys:
        before, after = old.get(key, KEY_DEFAULTS.get(key)), new.get(key, KEY_DEFAULTS.get(key))
        if key in ("snowflake", "postgres") and isinstance(before, Mapping) and isinstance(after, Mapping):
            for sub in dict.fromkeys([*before, *after]):
                if before.get(sub) != after.get(sub):
                    changes[f"{key}.{sub}"] = (before.get(sub), after.get(sub))
        elif before != after:
            changes[key] = (before, after)
    return changes
