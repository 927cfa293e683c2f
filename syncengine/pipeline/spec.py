"""The typed table specification the pipeline runs on.

Built from the Django model by `syncengine.specs.table_spec(table)`; the pipeline never sees a
model. Column names here are as configured (see `identifiers` for how they match source columns).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class SyncMode(StrEnum):
    FULL = "full"
    INCREMENTAL = "incremental"


class DriftPolicy(StrEnum):
    """What a run does when the source's columns differ from the target's.

    - evolve (default): add new source columns to the target; keep dropped ones (NULL in new rows); widen
      compatible type changes; stop the run on an incompatible type change.
    - strict: any difference stops the run before loading.
    - ignore: load only the columns both sides share; never alter the target.
    """

    EVOLVE = "evolve"
    STRICT = "strict"
    IGNORE = "ignore"


class EncryptionMode(StrEnum):
    OFF = "off"
    ALL = "all"  # `encryption: true`: every column except primary key and watermark columns
    COLUMNS = "columns"


class CompressionMode(StrEnum):
    OFF = "off"
    AUTO = "auto"  # `compression: true`: VARIANT/OBJECT/ARRAY, BINARY and unbounded text columns
    COLUMNS = "columns"


class DeleteMode(StrEnum):
    """What an incremental run does with target rows whose key no longer exists in the source.

    - off (default): nothing; they stay (a full load always drops them).
    - hard: delete them in the publishing transaction.
    - soft: set `_fdm_deleted_at` on them (cleared when the key comes back).
    """

    OFF = "off"
    HARD = "hard"
    SOFT = "soft"


DEFAULT_DELETE_MAX_RATIO = 0.1


@dataclass(frozen=True)
class SourceRef:
    database: str
    schema: str
    table: str


@dataclass(frozen=True)
class TargetRef:
    schema: str
    table: str


@dataclass(frozen=True)
class EncryptionSpec:
    mode: EncryptionMode = EncryptionMode.OFF
    columns: tuple[str, ...] = ()
    searchable: tuple[str, ...] = ()


@dataclass(frozen=True)
class CompressionSpec:
    mode: CompressionMode = CompressionMode.OFF
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeletesSpec:
    """Deletes in the source, kept in step (`mode`); a run that would remove more than `max_ratio` of the
    target's rows fails instead, deleting nothing, unless the operator allowed it for that run."""

    mode: DeleteMode = DeleteMode.OFF
    max_ratio: float = DEFAULT_DELETE_MAX_RATIO


@dataclass(frozen=True)
class EncryptedElsewhere:
    """What another table on the same source encrypts: a run may not store those columns in clear.

    `columns` are the encrypted names as configured there; with `every_column`, it encrypts every column but
    `columns` (its key and incremental column), and with `keeps_declared_key` the source's declared key too.
    """

    table: str
    columns: tuple[str, ...]
    every_column: bool = False
    keeps_declared_key: bool = False


@dataclass(frozen=True)
class TableSpec:
    name: str
    source: SourceRef
    target: TargetRef
    mode: SyncMode = SyncMode.FULL
    watermark_column: str | None = None
    primary_key: tuple[str, ...] = ()  # empty: use the source's declared primary key, if any
    include_columns: tuple[str, ...] | None = None  # None: all columns
    exclude_columns: tuple[str, ...] = ()
    column_names: dict[str, str] = field(default_factory=dict)  # source name -> target name overrides
    encryption: EncryptionSpec = EncryptionSpec()
    compression: CompressionSpec = CompressionSpec()
    drift_policy: DriftPolicy = DriftPolicy.EVOLVE
    batch_size: int = 100_000
    deletes: DeletesSpec = DeletesSpec()
    history: bool = False  # SCD type 2: keep every version with _fdm_valid_from/_fdm_valid_to/_fdm_is_current
    lineage: bool = False  # add _fdm_synced_at and _fdm_run_id to each row written
    slices: int = 0  # `parallel.slices`: a full load split into this many key ranges (0: one process)
    # The per-source protection policy: what other tables encrypt, and this table's recorded exceptions.
    encrypted_elsewhere: tuple[EncryptedElsewhere, ...] = ()
    clear_columns: tuple[str, ...] = ()
