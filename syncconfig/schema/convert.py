"""Conversions between a validated table, the model's field values and the canonical table dict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncconfig.choices import CompressionMode, EncryptionMode
from syncconfig.schema.document import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DELETE_MAX_RATIO,
    DEFAULT_DELETE_MODE,
    DEFAULT_DRIFT_POLICY,
    TABLE_KEYS,
    ColumnSelection,
    DeletesBlock,
    TableDocument,
    duration_minutes,
    duration_text,
)
from syncconfig.schema.fields import MODEL_FIELDS, block_fields


def model_fields_from_table(table: TableDocument) -> dict[str, Any]:
    """The `TableConfig` field values for a validated table; every field is set, so applying them overwrites."""
    encryption = table.encryption
    encrypted: list[str]
    searchable: list[str]
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
    compressed: list[str]
    if compression is True:
        compression_mode, compressed = CompressionMode.AUTO, []
    elif compression is False:
        compression_mode, compressed = CompressionMode.OFF, []
    else:
        compression_mode, compressed = CompressionMode.COLUMNS, list(compression.columns)
    columns = table.columns or ColumnSelection()
    deletes = table.deletes or DeletesBlock()
    freshness = duration_minutes(table.freshness_sla) if table.freshness_sla else table.max_staleness_minutes
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
        "clear_columns": dict(table.clear_columns),
        "schema_drift": table.schema_drift,
        "batch_size": table.batch_size,
        "max_staleness_minutes": freshness,
        "deletes_mode": deletes.mode,
        "deletes_max_ratio": deletes.max_ratio,
        "keep_history": table.history,
        "lineage": table.lineage,
        "reconcile_schedule": table.reconcile.schedule if table.reconcile else "",
        "parallel_slices": table.parallel.slices if table.parallel else None,
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
        "snowflake": {key: fields[field] for key, field in block_fields("snowflake").items()},
        "postgres": {key: fields[field] for key, field in block_fields("postgres").items()},
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

    table["encryption"] = _encryption_value(fields)
    table["compression"] = _compression_value(fields)
    if fields["column_names"]:
        names = fields["column_names"]
        # Sorted: the database's jsonb does not keep key order, and a stable export must not depend on it.
        table["column_names"] = dict(sorted(names.items())) if isinstance(names, Mapping) else names
    if fields["clear_columns"]:
        clear = fields["clear_columns"]
        table["clear_columns"] = dict(sorted(clear.items())) if isinstance(clear, Mapping) else clear
    if fields["schema_drift"] != DEFAULT_DRIFT_POLICY:
        table["schema_drift"] = fields["schema_drift"]
    if fields["batch_size"] != DEFAULT_BATCH_SIZE:
        table["batch_size"] = fields["batch_size"]
    table.update(_trust_keys(fields))
    if not fields["enabled"]:
        table["enabled"] = False
    if fields["notes"]:
        table["notes"] = fields["notes"]
    return table


def _encryption_value(fields: Mapping[str, Any]) -> Any:
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
        return True if len(block) == 1 else block
    if mode == EncryptionMode.COLUMNS:
        return {"columns": encrypted, **({"searchable": searchable} if searchable else {})}
    return False


def _compression_value(fields: Mapping[str, Any]) -> Any:
    mode = fields["compression_mode"]
    if mode == CompressionMode.AUTO:
        return True
    if mode == CompressionMode.COLUMNS:
        return {"columns": _copy(fields["compressed_columns"] or [])}
    return False


def _trust_keys(fields: Mapping[str, Any]) -> dict[str, Any]:
    """deletes, history, lineage, freshness_sla, reconcile and parallel, each only when not at its default."""
    table: dict[str, Any] = {}
    deletes: dict[str, Any] = {}
    if fields["deletes_mode"] != DEFAULT_DELETE_MODE:
        deletes["mode"] = fields["deletes_mode"]
    if fields["deletes_max_ratio"] != DEFAULT_DELETE_MAX_RATIO:
        deletes["max_ratio"] = fields["deletes_max_ratio"]
    if deletes:
        table["deletes"] = deletes
    if fields["keep_history"]:
        table["history"] = True
    if fields["lineage"]:
        table["lineage"] = True
    freshness = fields["max_staleness_minutes"]
    if freshness is not None:
        # A value the schema would refuse is written as it is, so that validating reports it.
        table["freshness_sla"] = (
            duration_text(freshness) if isinstance(freshness, int) and freshness > 0 else freshness
        )
    if fields["reconcile_schedule"]:
        table["reconcile"] = {"schedule": fields["reconcile_schedule"]}
    if fields["parallel_slices"] is not None:
        table["parallel"] = {"slices": fields["parallel_slices"]}
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
    "clear_columns": {},
    "schema_drift": DEFAULT_DRIFT_POLICY,
    "batch_size": DEFAULT_BATCH_SIZE,
    "deletes": None,
    "history": False,
    "lineage": False,
    "freshness_sla": None,
    "max_staleness_minutes": None,
    "reconcile": None,
    "parallel": None,
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
