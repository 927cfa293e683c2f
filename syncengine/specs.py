"""The typed, Django-free specification the pipeline runs on, built from a table's configuration."""

from __future__ import annotations

from syncconfig.models import TableConfig
from syncengine.pipeline import spec as pipeline


def table_spec(table: TableConfig) -> pipeline.TableSpec:
    """The pipeline's TableSpec for a configured table (the choices' values are the pipeline's enum values)."""
    return pipeline.TableSpec(
        name=table.name,
        source=pipeline.SourceRef(table.snowflake_database, table.snowflake_schema, table.snowflake_table),
        target=pipeline.TargetRef(table.postgres_schema, table.postgres_table),
        mode=pipeline.SyncMode(table.sync_mode),
        watermark_column=table.incremental_column or None,
        primary_key=tuple(table.primary_key),
        include_columns=tuple(table.include_columns) if table.include_columns else None,
        exclude_columns=tuple(table.exclude_columns),
        column_names=dict(table.column_names),
        encryption=pipeline.EncryptionSpec(
            mode=pipeline.EncryptionMode(table.encryption_mode),
            columns=tuple(table.encrypted_columns),
            searchable=tuple(table.searchable_columns),
        ),
        compression=pipeline.CompressionSpec(
            mode=pipeline.CompressionMode(table.compression_mode),
            columns=tuple(table.compressed_columns),
        ),
        drift_policy=pipeline.DriftPolicy(table.schema_drift),
        batch_size=table.batch_size,
    )
