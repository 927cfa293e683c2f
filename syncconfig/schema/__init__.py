"""The one validation schema for table configuration.

A table's configuration enters fdm three ways: a YAML file (`import_tables`, the admin's import page), the admin
form, and the REST API. All of them validate through this package, so a table that one of them accepts, all
accept, and every rejection reads the same:

    tables[2] market_data.sync_mode: must be one of: full, incremental; got string 'fulll'

The schema works on the "table dict": the shape of one entry of `config/tables.yaml` (docs/table-configuration.md).
`schema` checks shape and types strictly with pydantic; `rules` relates one key to another, so that each error
points at the exact key and list item it is about; `messages` words pydantic's errors; `convert` moves between
a validated table, the model's fields and the canonical dict; `fields` maps model fields to key paths.

Public surface:
- `validate_table(data)` and `validate_document(data)` return the parsed tables and a list of `ConfigError`.
- `table_dict_from_model(instance)` turns a `TableConfig` (or anything with its field names) into a table dict.
- `model_fields_from_table(table)` gives the model field values for a validated table.
- `table_to_dict(table)` is the canonical dict (fixed key order, defaults omitted) that export writes.
- `table_dict_changes(old, new)` lists what differs between two table dicts, key by key.
- `path_for_field(field)` and `field_for_path(path)` translate between model fields and table-dict key paths.
"""

from syncconfig.schema.convert import (
    KEY_DEFAULTS,
    model_fields_from_table,
    table_dict_changes,
    table_dict_from_fields,
    table_dict_from_model,
    table_to_dict,
)
from syncconfig.schema.document import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DELETE_MAX_RATIO,
    DEFAULT_DRIFT_POLICY,
    DEFAULT_SCHEDULE,
    DEFAULT_SYNC_MODE,
    MAX_BATCH_SIZE,
    MAX_SCHEDULE_LENGTH,
    MAX_SLICES,
    MAX_STALENESS_MINUTES,
    MAX_TABLE_NAME_LENGTH,
    MIN_SLICES,
    TABLE_KEYS,
    TABLE_NAME_PATTERN,
    ColumnSelection,
    CompressionBlock,
    EncryptionBlock,
    PostgresTarget,
    SnowflakeSource,
    TableDocument,
    duration_minutes,
    duration_text,
    schedule_keyword,
    schedule_problem,
)
from syncconfig.schema.errors import ConfigError, describe, format_path
from syncconfig.schema.fields import MODEL_FIELDS, field_for_path, path_for_field
from syncconfig.schema.validate import DocumentValidation, TableValidation, validate_document, validate_table

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_DELETE_MAX_RATIO",
    "DEFAULT_DRIFT_POLICY",
    "DEFAULT_SCHEDULE",
    "DEFAULT_SYNC_MODE",
    "KEY_DEFAULTS",
    "MAX_BATCH_SIZE",
    "MAX_SCHEDULE_LENGTH",
    "MAX_STALENESS_MINUTES",
    "MAX_SLICES",
    "MAX_TABLE_NAME_LENGTH",
    "MIN_SLICES",
    "MODEL_FIELDS",
    "TABLE_KEYS",
    "TABLE_NAME_PATTERN",
    "ColumnSelection",
    "CompressionBlock",
    "ConfigError",
    "DocumentValidation",
    "EncryptionBlock",
    "PostgresTarget",
    "SnowflakeSource",
    "TableDocument",
    "TableValidation",
    "describe",
    "duration_minutes",
    "duration_text",
    "field_for_path",
    "format_path",
    "model_fields_from_table",
    "path_for_field",
    "schedule_keyword",
    "schedule_problem",
    "table_dict_changes",
    "table_dict_from_fields",
    "table_dict_from_model",
    "table_to_dict",
    "validate_document",
    "validate_table",
]
