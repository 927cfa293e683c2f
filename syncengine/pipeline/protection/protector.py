"""The batch step of protection: a ProtectionPlan applied to one Arrow batch, column-wise.

Each protected value is serialised (`codec.plaintext_bytes`), compressed (zstd, a dictionary trained on the
first batch when that helps), padded and encrypted; the blind index is computed on the uncompressed plaintext.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc

from syncengine.pipeline.errors import ConfigurationError, DictionaryIdTaken
from syncengine.pipeline.protection import compress
from syncengine.pipeline.protection.blind_index import BlindIndex
from syncengine.pipeline.protection.codec import plaintext_bytes
from syncengine.pipeline.protection.crypto import ColumnCipher, ColumnIdentity
from syncengine.pipeline.protection.keyring import Keyring
from syncengine.pipeline.protection.plan import ColumnProtection, ProtectionPlan
from syncengine.pipeline.protection.rowkeys import row_keys

DICTIONARY_SAMPLE_ROWS = 10_000


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
            identity = ColumnIdentity(self.plan.target_schema, self.plan.target_table, column.target_name)
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
            stored = self._prepare(protection, columns)
            if protection.encrypted:
                stored = self._ciphers[name].encrypt(stored, row_keys=keys, compressed=protection.compressed)
            self.stats[name].bytes_stored += _value_bytes(stored)
            columns[name] = stored
        return pa.RecordBatch.from_arrays([columns[name] for name in load_order], names=list(load_order))

    def _prepare(self, protection: ColumnProtection, columns: dict[str, pa.Array]) -> pa.Array:
        """A column's values serialised and, when configured, compressed; its blind index added to `columns`."""
        name = protection.target_name
        stats = self.stats[name]
        plain = plaintext_bytes(columns[name])
        stats.bytes_plain += _value_bytes(plain)
        if protection.blind_index:
            columns[protection.blind_index] = self._indexes[name].compute(plain)
        if not protection.compressed:
            return plain
        # A dictionary is stored in clear and holds fragments of the values it was trained on: never for a
        # column that is also encrypted.
        dictionary = None if protection.encrypted else self._dictionary_for(name, plain)
        compressed = compress.compress_array(plain, dictionary=dictionary)
        stats.bytes_compressed += compressed.bytes_out
        return compressed.values

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
        """Per-column byte counts for the run record: plaintext, compressed, stored.

        An encrypted column records only what it stores (ciphertext, which anyone with the database sees):
        its plaintext and compressed sizes would undo the padding for anyone who can read run records.
        """
        checks: dict[str, Any] = {}
        encrypted = {column.target_name for column in self.plan.columns if column.encrypted}
        for name, stats in self.stats.items():
            if name in encrypted:
                checks[name] = {"encrypted": True, "bytes_stored": stats.bytes_stored}
                continue
            checks[name] = {
                "bytes_plain": stats.bytes_plain,
                "bytes_compressed": stats.bytes_compressed,
                "bytes_stored": stats.bytes_stored,
                "compression_ratio": round(stats.bytes_plain / stats.bytes_compressed, 3)
                if stats.bytes_compressed
                else None,
            }
        return checks

    def compression_totals(self) -> tuple[int, int]:
        """Bytes before and after compression over the compressed columns that are not encrypted (the
        encrypted ones' sizes stay out of run records, as in `checks`)."""
        clear = [
            self.stats[column.target_name]
            for column in self.plan.columns
            if column.compressed and not column.encrypted
        ]
        return sum(s.bytes_plain for s in clear), sum(s.bytes_compressed for s in clear)


def _value_bytes(array: pa.Array) -> int:
    if len(array) == 0:
        return 0
    total = pc.sum(pc.binary_length(cast(Any, array))).as_py()
    return int(total or 0)
