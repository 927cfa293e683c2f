"""The protection plan: which loaded columns a table encrypts, indexes blindly and compresses.

Decided once per run (`plan_protection`), before anything is extracted:
- `encryption: true` encrypts every loaded column except the primary key and the incremental column (rows
  are matched on the key, and the next run filters on the watermark); `{columns: [...]}` encrypts those.
  Searchable columns also get a blind index column, `<column>_bidx`, with a B-tree index on it.
- `compression: true` compresses VARIANT/OBJECT/ARRAY, BINARY and unbounded TEXT columns; `{columns: [...]}`
  compresses those (they must be of one of these types).
- A protected column is stored as `bytea`; its plaintext type (what a reader gets back) is kept in the
  catalog (`catalog`), written in the publishing transaction, with the row key the associated data binds to
  and the blind index columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

from syncengine.pipeline import identifiers
from syncengine.pipeline.errors import ConfigurationError
from syncengine.pipeline.protection.blind_index import BLIND_INDEX_VERSION, DEFAULT_BLIND_INDEX_BITS
from syncengine.pipeline.schema.columns import ColumnPlan, TablePlan
from syncengine.pipeline.spec import CompressionMode, EncryptionMode, TableSpec
from syncengine.pipeline.typemap import BYTEA, SourceColumn, canonical_snowflake_type, wire_type

BLIND_INDEX_SUFFIX = "_bidx"
DERIVED_TYPE = "FDM_BLIND_INDEX"  # the data type of a blind index column's synthetic source column
COMPRESSIBLE_TYPES = {"VARIANT", "OBJECT", "ARRAY", "BINARY", "TEXT"}
# Snowflake's TEXT without a length is VARCHAR(16777216); shorter declared lengths are codes and names.
UNBOUNDED_TEXT_LENGTH = 16_777_216


@dataclass(frozen=True)
class ColumnProtection:
    """How one loaded column is stored."""

    source_name: str
    target_name: str
    plain_type: str  # the PostgreSQL type of its values before protection; readers get this type back
    encrypted: bool
    compressed: bool
    blind_index: str | None = None  # the target name of its blind index column
    blind_index_bits: int = DEFAULT_BLIND_INDEX_BITS
    # The oldest format version the blind index values may be in (lookups try every version since): what
    # this run writes is the current one, but an incremental run keeps the older rows' versions.
    blind_index_version: int = BLIND_INDEX_VERSION

    def catalog_row(self) -> tuple[Any, ...]:
        """What the catalog stores about the column's values (the blind index version aside: it changes
        when rotation rewrites the index, not how values are stored)."""
        return (
            self.target_name,
            self.source_name,
            self.plain_type,
            self.encrypted,
            self.compressed,
            self.blind_index,
            self.blind_index_bits if self.blind_index else None,
        )


@dataclass(frozen=True)
class ProtectionPlan:
    table: str  # fdm's table name
    target_schema: str  # the target table: what ciphertexts are bound to
    target_table: str
    columns: tuple[ColumnProtection, ...]
    row_key: tuple[str, ...]  # target names of the primary key columns, bound into every ciphertext

    @property
    def target(self) -> str:
        return f"{self.target_schema}.{self.target_table}"

    def keeping_blind_index_versions(self, stored: Mapping[str, int]) -> ProtectionPlan:
        """The plan of a run that adds to the rows already stored: each blind index keeps the stored column's
        oldest version (`stored`, by target column), since the older rows keep their index values."""
        columns = tuple(
            replace(column, blind_index_version=min(column.blind_index_version, stored[column.target_name]))
            if column.target_name in stored
            else column
            for column in self.columns
        )
        return replace(self, columns=columns)

    @property
    def encrypts(self) -> bool:
        return any(column.encrypted for column in self.columns)

    def by_target(self) -> dict[str, ColumnProtection]:
        return {column.target_name: column for column in self.columns}

    def plain_wires(self, plan: TablePlan) -> dict[str, pa.DataType]:
        """The Arrow type each protected column is cast to before it is protected."""
        wires: dict[str, pa.DataType] = {}
        for column in self.columns:
            wire = wire_type(column.plain_type, plan.by_source(column.source_name).source)
            if wire is None:  # plain types come from typemap, which always has a wire type for them
                raise ConfigurationError(
                    f"cannot protect values of type {column.plain_type}", table=self.table
                )
            wires[column.target_name] = wire
        return wires

    def signature(self) -> list[tuple[Any, ...]]:
        """What must stay the same for stored values to stay readable (compared with the catalog)."""
        return sorted((*column.catalog_row(), list(self.row_key)) for column in self.columns)


def _resolve(names: Sequence[str], plan: TablePlan, *, table: str, what: str) -> list[ColumnPlan]:
    resolved = []
    source_names = [column.source_name for column in plan.columns]
    for name in names:
        actual = identifiers.find(name, source_names)
        if actual is None:
            raise ConfigurationError(f"{what} {name!r} is not among the loaded columns", table=table)
        resolved.append(plan.by_source(actual))
    return resolved


def _compressible(column: ColumnPlan) -> bool:
    return canonical_snowflake_type(column.source.data_type) in COMPRESSIBLE_TYPES


def _auto_compressed(column: ColumnPlan) -> bool:
    data_type = canonical_snowflake_type(column.source.data_type)
    if data_type == "TEXT":
        return column.source.length is None or column.source.length >= UNBOUNDED_TEXT_LENGTH
    return data_type in COMPRESSIBLE_TYPES


def plan_protection(spec: TableSpec, plan: TablePlan) -> tuple[TablePlan, ProtectionPlan | None]:
    """Decide which columns are encrypted, blind-indexed and compressed; return the plan they are loaded by.

    1. Resolve the configured names against the loaded columns (a name that matches none is an error).
    2. Refuse to encrypt the primary key or the incremental column.
    3. Protected columns become `bytea`; each searchable column gets a derived blind index column after the
       source columns.
    """
    encrypted, searchable = _encrypted_columns(spec, plan)
    compressed = _compressed_columns(spec, plan)
    if not (encrypted or compressed):
        return plan, None

    taken = {column.target_name for column in plan.columns}
    protections: list[ColumnProtection] = []
    new_columns: list[ColumnPlan] = []
    derived: list[ColumnPlan] = []
    for column in plan.columns:
        if column.source_name not in encrypted | compressed:
            new_columns.append(column)
            continue
        blind_index = None
        if column.source_name in searchable:
            derived.append(_blind_index_column(column, taken, table=spec.name))
            blind_index = derived[-1].target_name
        protections.append(
            ColumnProtection(
                source_name=column.source_name,
                target_name=column.target_name,
                plain_type=column.target_type,
                encrypted=column.source_name in encrypted,
                compressed=column.source_name in compressed,
                blind_index=blind_index,
            )
        )
        new_columns.append(
            ColumnPlan(
                source=column.source,
                target_name=column.target_name,
                target_type=BYTEA,
                plain_type=column.target_type,
            )
        )
    protected_plan = TablePlan(
        columns=tuple(new_columns + derived), primary_key=plan.primary_key, watermark=plan.watermark
    )
    return protected_plan, ProtectionPlan(
        table=spec.name,
        target_schema=spec.target.schema,
        target_table=spec.target.table,
        columns=tuple(protections),
        row_key=plan.target_primary_key,
    )


def _untouchable(plan: TablePlan) -> set[str]:
    """The primary key and incremental columns: runs match and filter on them, so they stay in clear."""
    return set(plan.primary_key) | ({plan.watermark.source_name} if plan.watermark else set())


def _encrypted_columns(spec: TableSpec, plan: TablePlan) -> tuple[set[str], set[str]]:
    """Source names of the encrypted columns and of the searchable (blind-indexed) ones among them."""
    table = spec.name
    key_names = set(plan.primary_key)
    watermark_name = plan.watermark.source_name if plan.watermark else None
    encryption = spec.encryption
    if encryption.mode == EncryptionMode.ALL:
        untouchable = _untouchable(plan)
        encrypted = [column for column in plan.columns if column.source_name not in untouchable]
    elif encryption.mode == EncryptionMode.COLUMNS:
        encrypted = _resolve(encryption.columns, plan, table=table, what="encrypted column")
    else:
        encrypted = []
    for column in encrypted:
        if column.source_name in key_names:
            raise ConfigurationError(
                "a primary key column cannot be encrypted: rows are matched on it",
                table=table,
                column=column.source_name,
            )
        if column.source_name == watermark_name:
            raise ConfigurationError(
                "the incremental column cannot be encrypted: each run filters and orders on it",
                table=table,
                column=column.source_name,
            )
    encrypted_names = {column.source_name for column in encrypted}
    searchable = (
        _resolve(encryption.searchable, plan, table=table, what="searchable column")
        if encryption.mode != EncryptionMode.OFF
        else []
    )
    for column in searchable:
        if column.source_name not in encrypted_names:
            raise ConfigurationError(
                "a searchable column must also be encrypted", table=table, column=column.source_name
            )
    return encrypted_names, {column.source_name for column in searchable}


def _compressed_columns(spec: TableSpec, plan: TablePlan) -> set[str]:
    """Source names of the compressed columns."""
    table = spec.name
    untouchable = _untouchable(plan)
    compression = spec.compression
    if compression.mode == CompressionMode.AUTO:
        return {
            column.source_name
            for column in plan.columns
            if _auto_compressed(column) and column.source_name not in untouchable
        }
    if compression.mode != CompressionMode.COLUMNS:
        return set()
    compressed = _resolve(compression.columns, plan, table=table, what="compressed column")
    for column in compressed:
        if not _compressible(column):
            raise ConfigurationError(
                f"only TEXT, VARIANT, OBJECT, ARRAY and BINARY columns can be compressed; this one is "
                f"{column.source.display_type}",
                table=table,
                column=column.source_name,
            )
        if column.source_name in untouchable:
            raise ConfigurationError(
                "primary key and incremental columns are never compressed",
                table=table,
                column=column.source_name,
            )
    return {column.source_name for column in compressed}


def _blind_index_column(column: ColumnPlan, taken: set[str], *, table: str) -> ColumnPlan:
    """The derived column that holds a searchable column's blind index; its name is added to `taken`."""
    blind_index = f"{column.target_name}{BLIND_INDEX_SUFFIX}"
    if blind_index in taken:
        raise ConfigurationError(
            f"the blind index column {blind_index!r} would clash with a loaded column; rename one with "
            "column_names",
            table=table,
            column=column.source_name,
        )
    if (problem := identifiers.identifier_problem(blind_index, postgres=True)) is not None:
        raise ConfigurationError(
            f"blind index column name {blind_index!r} {problem}", table=table, column=column.source_name
        )
    taken.add(blind_index)
    return ColumnPlan(
        source=SourceColumn(name=f"{column.source_name}{BLIND_INDEX_SUFFIX}", data_type=DERIVED_TYPE),
        target_name=blind_index,
        target_type=BYTEA,
        derived=True,
    )
