"""Where each model field lives in the table dict (the YAML's key paths), both ways: the one map that the
conversions, the model's form errors and the services' error paths all read."""

from __future__ import annotations

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
    "clear_columns",
    "schema_drift",
    "batch_size",
    "max_staleness_minutes",
    "deletes_mode",
    "deletes_max_ratio",
    "keep_history",
    "lineage",
    "reconcile_schedule",
    "parallel_slices",
    "enabled",
    "notes",
)

# The table-dict key path of each model field whose key is not its own name (the others share their name).
FIELD_PATHS = {
    "snowflake_database": "snowflake.database",
    "snowflake_schema": "snowflake.schema",
    "snowflake_table": "snowflake.table",
    "postgres_schema": "postgres.schema",
    "postgres_table": "postgres.table",
    "include_columns": "columns.include",
    "exclude_columns": "columns.exclude",
    "encrypted_columns": "encryption.columns",
    "searchable_columns": "encryption.searchable",
    "encryption_mode": "encryption",
    "compressed_columns": "compression.columns",
    "compression_mode": "compression",
    "max_staleness_minutes": "freshness_sla",
    "keep_history": "history",
    "deletes_mode": "deletes.mode",
    "deletes_max_ratio": "deletes.max_ratio",
    "reconcile_schedule": "reconcile.schedule",
    "parallel_slices": "parallel.slices",
}
# A block that no one field holds: its errors show on the field the block is mostly about.
_BLOCK_FIELDS = {"snowflake": "snowflake_table", "postgres": "postgres_table", "columns": "include_columns"}
# Longest prefix first, so that `encryption.columns` wins over `encryption`.
_FIELD_FOR_PREFIX = sorted(
    [(path, field) for field, path in FIELD_PATHS.items()] + list(_BLOCK_FIELDS.items()),
    key=lambda item: -len(item[0]),
)


def path_for_field(field: str) -> str:
    """The table-dict key path of a model field (`snowflake_table` -> `snowflake.table`)."""
    return FIELD_PATHS.get(field, field)


def field_for_path(path: str) -> str | None:
    """The model field an error on table-dict key `path` belongs to (`encryption.columns[1]` ->
    `encrypted_columns`); None when no field holds it."""
    for prefix, field in _FIELD_FOR_PREFIX:
        if path == prefix or path.startswith((prefix + ".", prefix + "[")):
            return field
    top = path.split(".")[0].split("[")[0]
    return top if top in MODEL_FIELDS else None


def block_fields(block: str) -> dict[str, str]:
    """The model fields of a nested block by their key in it: `snowflake` -> {"database": "snowflake_database", ...}."""
    prefix = block + "."
    return {path[len(prefix) :]: field for field, path in FIELD_PATHS.items() if path.startswith(prefix)}
