"""Protection of sensitive and large columns at rest: which columns a table encrypts, indexes blindly and
compresses, and the batch step that does it.

Planning (`plan_protection`, once per run, before anything is extracted):
- `encryption: true` encrypts every loaded column except the primary key and the incremental column (rows
  are matched on the key, and the next run filters on the watermark); `{columns: [...]}` encrypts those.
  Searchable columns also get a blind index column, `<column>_bidx`, with a B-tree index on it.
- `compression: true` compresses VARIANT/OBJECT/ARRAY, BINARY and unbounded TEXT columns; `{columns: [...]}`
  compresses those (they must be of one of these types).
- A protected column is stored as `bytea`; its plaintext type (what a reader gets back) is kept in the
  catalog `_fdm.protected_columns`, written in the publishing transaction, with the row key the associated
  data binds to and the blind index columns.

The batch step (`Protector.apply`) runs after the batch is cast to PostgreSQL's types, column-wise: each value
is serialised (`plaintext_bytes`), compressed (zstd, a dictionary trained on the first batch when that helps),
padded and encrypted; the blind index is computed on the uncompressed plaintext.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from syncengine.pipeline import identifiers
from syncengine.pipeline.errors import ConfigurationError, DictionaryIdTaken
from syncengine.pipeline.identifiers import quote_postgres
from syncengine.pipeline.schema.columns import ColumnPlan, TablePlan
from syncengine.pipeline.schema.target import qualified
from syncengine.pipeline.spec import CompressionMode, EncryptionMode, TableSpec
from syncengine.pipeline.transform import compress
from syncengine.pipeline.transform.crypto import (
    DEFAULT_BLIND_INDEX_BITS,
    BlindIndex,
    ColumnCipher,
    ColumnIdentity,
    row_keys,
)
from syncengine.pipeline.transform.keyring import Keyring
from syncengine.pipeline.typemap import BYTEA, SourceColumn, canonical_snowflake_type, wire_type
from syncengine.pipeline.watermark import STATE_SCHEMA

CATALOG_TABLE = "protected_columns"
BLIND_INDEX_SUFFIX = "_bidx"
DERIVED_TYPE = "FDM_BLIND_INDEX"  # the data type of a blind index column's synthetic source column
COMPRESSIBLE_TYPES = {"VARIANT", "OBJECT", "ARRAY", "BINARY", "TEXT"}
# Snowflake's TEXT without a length is VARCHAR(16777216); shorter declared lengths are codes and names.
UNBOUNDED_TEXT_LENGTH = 16_777_216
DICTIONARY_SAMPLE_ROWS = 10_000


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

    def catalog_row(self) -> tuple[Any, ...]:
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
    target: str  # schema.table in the target: what ciphertexts are bound to
    columns: tuple[ColumnProtection, ...]
    row_key: tuple[str, ...]  # target names of the primary key columns, bound into every ciphertext

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
    table = spec.name
    key_names = set(plan.primary_key)
    watermark_name = plan.watermark.source_name if plan.watermark else None
    untouchable = key_names | ({watermark_name} if watermark_name else set())

    encryption = spec.encryption
    if encryption.mode == EncryptionMode.ALL:
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
    searchable_names = {column.source_name for column in searchable}

    compression = spec.compression
    if compression.mode == CompressionMode.AUTO:
        compressed = [
            column
            for column in plan.columns
            if _auto_compressed(column) and column.source_name not in untouchable
        ]
    elif compression.mode == CompressionMode.COLUMNS:
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
    else:
        compressed = []
    compressed_names = {column.source_name for column in compressed}

    protected_names = encrypted_names | compressed_names
    if not protected_names:
        return plan, None

    taken = {column.target_name for column in plan.columns}
    protections: list[ColumnProtection] = []
    new_columns: list[ColumnPlan] = []
    derived: list[ColumnPlan] = []
    for column in plan.columns:
        if column.source_name not in protected_names:
            new_columns.append(column)
            continue
        blind_index = None
        if column.source_name in searchable_names:
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
                    f"blind index column name {blind_index!r} {problem}",
                    table=table,
                    column=column.source_name,
                )
            taken.add(blind_index)
            derived.append(
                ColumnPlan(
                    source=SourceColumn(
                        name=f"{column.source_name}{BLIND_INDEX_SUFFIX}", data_type=DERIVED_TYPE
                    ),
                    target_name=blind_index,
                    target_type=BYTEA,
                    derived=True,
                )
            )
        protections.append(
            ColumnProtection(
                source_name=column.source_name,
                target_name=column.target_name,
                plain_type=column.target_type,
                encrypted=column.source_name in encrypted_names,
                compressed=column.source_name in compressed_names,
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
        table=table,
        target=f"{spec.target.schema}.{spec.target.table}",
        columns=tuple(protections),
        row_key=plan.target_primary_key,
    )


# --- values as bytes -------------------------------------------------------------------------------------


def plaintext_bytes(array: pa.Array) -> pa.Array:
    """A column's values as the bytes that are compressed and encrypted (`decode_plaintext` reverses it).

    Text, JSON and binary as they are; numbers, dates, times, timestamps and booleans by Arrow's text form
    (decimals with their scale, timestamps to the microsecond, shortest round-trip floats).
    """
    kind = array.type
    if isinstance(kind, pa.ExtensionType):
        array = cast(Any, array).storage
        kind = array.type
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return array.cast(pa.binary())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return array.cast(pa.binary())
    return array.cast(pa.string()).cast(pa.binary())


def decode_plaintext(value: bytes, plain_type: str) -> Any:
    """The Python value of plaintext bytes for a column of PostgreSQL type `plain_type`."""
    import datetime
    from decimal import Decimal

    if plain_type == "bytea":
        return value
    text = value.decode("utf-8")
    if plain_type == "text" or plain_type.startswith(("character", "text")):
        return text
    if plain_type == "jsonb":
        return json.loads(text)
    if plain_type.startswith("numeric"):
        return Decimal(text)
    if plain_type == "boolean":
        return text == "true"
    if plain_type in ("double precision", "real"):
        return float(text)
    if plain_type == "date":
        return datetime.date.fromisoformat(text)
    if plain_type.startswith("timestamp"):
        parsed = datetime.datetime.fromisoformat(text)
        if "with time zone" in plain_type and parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=datetime.UTC)
        return parsed
    if plain_type.startswith("time"):
        return datetime.time.fromisoformat(text)
    if plain_type in ("bigint", "integer", "smallint"):
        return int(text)
    return text


# --- the batch step --------------------------------------------------------------------------------------


@dataclass
class ColumnStats:
    bytes_plain: int = 0  # plaintext bytes of the non-null values
    bytes_compressed: int = 0  # after compression (compressed columns)
    bytes_stored: int = 0  # what is written: frames or envelopes


@dataclass
class Protector:
    """Applies a ProtectionPlan to the batches of one run."""

    plan: ProtectionPlan
    keyring: Keyring | None
    # Stores a trained dictionary (column, dictionary) before any frame that uses it is written.
    save_dictionary: Callable[[str, compress.Dictionary], None] | None = None
    # The newest stored dictionary of each column: an incremental run reuses it; a full load trains anew.
    reuse: Mapping[str, compress.Dictionary] = field(default_factory=dict)
    stats: dict[str, ColumnStats] = field(default_factory=dict)
    _dictionaries: dict[str, compress.Dictionary | None] = field(default_factory=dict)
    _ciphers: dict[str, ColumnCipher] = field(default_factory=dict)
    _indexes: dict[str, BlindIndex] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.plan.encrypts and self.keyring is None:
            raise ConfigurationError(
                "encryption is configured but no keyring is set (FDM_ENCRYPTION_KEYS)", table=self.plan.table
            )
        for column in self.plan.columns:
            identity = ColumnIdentity(self.plan.target, column.target_name)
            if column.encrypted and self.keyring is not None:
                self._ciphers[column.target_name] = ColumnCipher(self.keyring, identity)
                if column.blind_index:
                    self._indexes[column.target_name] = BlindIndex(
                        self.keyring, identity, bits=column.blind_index_bits
                    )
            self.stats[column.target_name] = ColumnStats()

    def apply(self, batch: pa.RecordBatch, load_order: Sequence[str]) -> pa.RecordBatch:
        """`batch` (target names, plaintext types) with protected columns replaced, blind indexes added, in
        `load_order`."""
        columns: dict[str, pa.Array] = {name: batch.column(name) for name in batch.schema.names}
        keys = row_keys([columns[name] for name in self.plan.row_key]) if self.plan.row_key else None
        for protection in self.plan.columns:
            name = protection.target_name
            stats = self.stats[name]
            plain = plaintext_bytes(columns[name])
            stats.bytes_plain += _value_bytes(plain)
            if protection.blind_index:
                columns[protection.blind_index] = self._indexes[name].compute(plain)
            stored = plain
            if protection.compressed:
                # A dictionary is stored in clear and holds fragments of the values it was trained on: never
                # for a column that is also encrypted.
                dictionary = None if protection.encrypted else self._dictionary_for(name, plain)
                compressed = compress.compress_array(plain, dictionary=dictionary)
                stored = compressed.values
                stats.bytes_compressed += compressed.bytes_out
            if protection.encrypted:
                stored = self._ciphers[name].encrypt(stored, row_keys=keys, compressed=protection.compressed)
            stats.bytes_stored += _value_bytes(stored)
            columns[name] = stored
        return pa.RecordBatch.from_arrays([columns[name] for name in load_order], names=list(load_order))

    def _dictionary_for(self, column: str, sample: pa.Array) -> compress.Dictionary | None:
        """The stored dictionary to reuse, or one trained once on the run's first batch and stored before any
        frame that needs it is written (a dictionary id that happens to be taken is drawn again)."""
        if column in self.reuse:
            return self.reuse[column]
        if column not in self._dictionaries:
            dictionary = compress.train_dictionary(sample.slice(0, DICTIONARY_SAMPLE_ROWS))
            if dictionary is not None and self.save_dictionary is not None:
                try:
                    self.save_dictionary(column, dictionary)
                except DictionaryIdTaken:
                    dictionary = compress.train_dictionary(sample.slice(0, DICTIONARY_SAMPLE_ROWS))
                    if dictionary is not None:
                        self.save_dictionary(column, dictionary)
            self._dictionaries[column] = dictionary
        return self._dictionaries[column]

    @property
    def dictionary_ids(self) -> set[int]:
        """The dictionaries this run's frames use."""
        used = [*self.reuse.values(), *self._dictionaries.values()]
        return {dictionary.dict_id for dictionary in used if dictionary is not None}

    def checks(self) -> dict[str, Any]:
        """Per-column byte counts for the run record: plaintext, compressed, stored."""
        return {
            name: {
                "bytes_plain": stats.bytes_plain,
                "bytes_compressed": stats.bytes_compressed,
                "bytes_stored": stats.bytes_stored,
                "compression_ratio": round(stats.bytes_plain / stats.bytes_compressed, 3)
                if stats.bytes_compressed
                else None,
            }
            for name, stats in self.stats.items()
        }


def _value_bytes(array: pa.Array) -> int:
    if len(array) == 0:
        return 0
    total = pc.sum(pc.binary_length(cast(Any, array))).as_py()
    return int(total or 0)


# --- the catalog -----------------------------------------------------------------------------------------


def catalog_table_sql() -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.{CATALOG_TABLE} ("
        "table_name text NOT NULL, target_schema text NOT NULL, target_table text NOT NULL, "
        "column_name text NOT NULL, source_column text NOT NULL, plain_type text NOT NULL, "
        "encrypted boolean NOT NULL, compressed boolean NOT NULL, blind_index_column text, "
        "blind_index_bits integer, row_key text[] NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), "
        "PRIMARY KEY (table_name, column_name))"
    )


@dataclass(frozen=True)
class CatalogTable:
    """What the catalog says about one synced table's protected columns."""

    table_name: str
    target_schema: str
    target_table: str
    columns: tuple[ColumnProtection, ...]
    row_key: tuple[str, ...]

    @property
    def target(self) -> str:
        return f"{self.target_schema}.{self.target_table}"

    def by_target(self) -> dict[str, ColumnProtection]:
        return {column.target_name: column for column in self.columns}

    def signature(self) -> list[tuple[Any, ...]]:
        return sorted((*column.catalog_row(), list(self.row_key)) for column in self.columns)


def read_catalog(conn: psycopg.Connection, table_name: str) -> CatalogTable | None:
    """The table's protected columns as the last published run recorded them, or None."""
    exists = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f"{STATE_SCHEMA}.{CATALOG_TABLE}",)
    ).fetchone()
    if not exists or not exists[0]:
        return None
    rows = conn.execute(
        f"SELECT target_schema, target_table, column_name, source_column, plain_type, encrypted, compressed, "  # noqa: S608
        f"blind_index_column, blind_index_bits, row_key FROM {STATE_SCHEMA}.{CATALOG_TABLE} "
        "WHERE table_name = %s ORDER BY column_name",
        (table_name,),
    ).fetchall()
    if not rows:
        return None
    columns = tuple(
        ColumnProtection(
            target_name=row[2],
            source_name=row[3],
            plain_type=row[4],
            encrypted=row[5],
            compressed=row[6],
            blind_index=row[7],
            blind_index_bits=row[8] or DEFAULT_BLIND_INDEX_BITS,
        )
        for row in rows
    )
    return CatalogTable(
        table_name=table_name,
        target_schema=rows[0][0],
        target_table=rows[0][1],
        columns=columns,
        row_key=tuple(rows[0][9]),
    )


def write_catalog(
    conn: psycopg.Connection, *, table_name: str, schema: str, table: str, plan: ProtectionPlan | None
) -> None:
    """Replace the table's catalog rows (call inside the publishing transaction)."""
    conn.execute(f"DELETE FROM {STATE_SCHEMA}.{CATALOG_TABLE} WHERE table_name = %s", (table_name,))  # noqa: S608
    if plan is None:
        return
    with conn.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {STATE_SCHEMA}.{CATALOG_TABLE} (table_name, target_schema, target_table, column_name, "  # noqa: S608
            "source_column, plain_type, encrypted, compressed, blind_index_column, blind_index_bits, row_key) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (table_name, schema, table, *column.catalog_row(), list(plan.row_key))
                for column in plan.columns
            ],
        )


def latest_dictionaries(conn: psycopg.Connection, table_name: str) -> dict[str, compress.Dictionary]:
    """The newest stored compression dictionary of each of the table's columns."""
    rows = conn.execute(
        f"SELECT DISTINCT ON (column_name) column_name, dict_id, data FROM {compress.DICTIONARIES_TABLE} "  # noqa: S608
        "WHERE table_name = %s ORDER BY column_name, created_at DESC, dict_id",
        (table_name,),
    ).fetchall()
    return {
        column: compress.Dictionary(dict_id=int(dict_id), data=bytes(data)) for column, dict_id, data in rows
    }


def prune_dictionaries(conn: psycopg.Connection, table_name: str, *, keep: set[int]) -> int:
    """After a full load (in its publishing transaction) only this run's frames exist: drop the table's other
    dictionaries, so that they do not pile up run after run. Returns how many were dropped."""
    cursor = conn.execute(
        f"DELETE FROM {compress.DICTIONARIES_TABLE} WHERE table_name = %s AND NOT (dict_id = ANY(%s))",  # noqa: S608
        (table_name, sorted(keep)),
    )
    return cursor.rowcount


def blind_index_ddl(schema: str, table: str, plan: ProtectionPlan) -> list[str]:
    """CREATE INDEX statements for the blind index columns (named per column; a no-op once they exist)."""
    statements = []
    for column in plan.columns:
        if column.blind_index:
            index_name = f"{table}_{column.blind_index}_idx"[:63]
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {quote_postgres(index_name)} ON {qualified(schema, table)} "
                f"({quote_postgres(column.blind_index)})"
            )
    return statements
