"""The typed, Django-free specification the pipeline runs on, built from a table's configuration."""

from __future__ import annotations

from syncconfig import selectors
from syncconfig.models import TableConfig
from syncconfig.protection import Protection
from syncengine.pipeline import spec as pipeline


def encrypted_elsewhere(table: TableConfig) -> tuple[pipeline.EncryptedElsewhere, ...]:
    """What the other tables reading the same Snowflake table encrypt (the per-source protection policy)."""
    own = Protection.of(table.to_table_dict())
    found = []
    for other_table in selectors.tables_reading(table.to_table_dict()["snowflake"], exclude=table):
        other = Protection.of(other_table.to_table_dict())
        if other.source != own.source or not other.encrypts_any:
            continue
        found.append(
            pipeline.EncryptedElsewhere(
                table=other.name,
                columns=tuple(sorted(other.label(column) for column in other.listed)),
                every_column=other.encrypts_all,
                keeps_declared_key=other.encrypts_all and not other_table.primary_key,
            )
        )
    return tuple(found)


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
        deletes=pipeline.DeletesSpec(
            mode=pipeline.DeleteMode(table.deletes_mode), max_ratio=table.deletes_max_ratio
        ),
        history=table.keep_history,
        lineage=table.lineage,
        slices=table.parallel_slices or 0,
        encrypted_elsewhere=encrypted_elsewhere(table),
        clear_columns=tuple(table.clear_columns),
    )
