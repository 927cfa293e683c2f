"""Key rotation: re-encrypt a table's stored values with the keyring's primary key and in the current format
version, in small transactions.

A rotation starts when a new key is put first in FDM_ENCRYPTION_KEYS (every process that syncs must be given
the new keyring): from then on, syncs encrypt with it, and `rotate_keys` moves the values already stored. It
also moves values of an older format version that are on the primary key already, and, once no value of a
searchable column is left in an older version, records in the catalog that its blind index is current.

- Safe to interrupt: each batch is one transaction that re-encrypts the values of a range of the table's pages
  (and recomputes their blind indexes); a rerun finds the values still on an older key and carries on.
- Readable throughout: every value names its key id, and older keys stay in the keyring until the rotation
  reports that no value uses them.
- One writer at a time: each batch holds the table's advisory lock (the one a sync takes) for its transaction
  only, so syncs run between batches, and a batch waits for a running sync rather than racing it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pyarrow as pa

from syncengine.pipeline.hooks import Log, no_log
from syncengine.pipeline.identifiers import quote_postgres
from syncengine.pipeline.locks import table_lock_key
from syncengine.pipeline.protection import compress
from syncengine.pipeline.protection.blind_index import BLIND_INDEX_VERSION, BlindIndex
from syncengine.pipeline.protection.catalog import CatalogTable, read_catalog, set_blind_index_version
from syncengine.pipeline.protection.crypto import (
    FLAG_COMPRESSED,
    FORMAT_VERSION,
    ColumnCipher,
    ColumnIdentity,
    Envelope,
    parse_envelope,
)
from syncengine.pipeline.protection.dictionaries import load_dictionaries
from syncengine.pipeline.protection.keyring import Keyring
from syncengine.pipeline.protection.rowkeys import row_keys_from_values
from syncengine.pipeline.schema.target import qualified

DEFAULT_PAGES_PER_BATCH = 200  # about 10,000 rows of 150 bytes: short transactions, few sync delays
LOCK_WAIT_SECONDS = 1.0
MAX_PASSES = 3


@dataclass
class KeyUsage:
    """How many stored values of each encrypted column use each key id, in each format version."""

    table_name: str
    primary: str | None
    counts: dict[str, dict[tuple[str, int], int]] = field(default_factory=dict)  # column: (key id, version)

    @property
    def columns(self) -> dict[str, dict[str, int]]:
        """Per column, the values per key id (whatever their format version)."""
        result: dict[str, dict[str, int]] = {}
        for column, counts in self.counts.items():
            by_key = result.setdefault(column, {})
            for (key_id, _), count in sorted(counts.items()):
                by_key[key_id] = by_key.get(key_id, 0) + count
        return result

    @property
    def total(self) -> int:
        return sum(sum(counts.values()) for counts in self.counts.values())

    @property
    def on_primary(self) -> int:
        """Values on the primary key and in the current format version: nothing left to rotate."""
        current = (self.primary or "", FORMAT_VERSION)
        return sum(counts.get(current, 0) for counts in self.counts.values())

    @property
    def old_format(self) -> int:
        """Values in an older format version, whatever their key."""
        return sum(
            count
            for counts in self.counts.values()
            for (_, version), count in counts.items()
            if version != FORMAT_VERSION
        )

    @property
    def remaining(self) -> int:
        return self.total - self.on_primary

    @property
    def key_ids(self) -> list[str]:
        return sorted({key_id for counts in self.columns.values() for key_id in counts})

    @property
    def percent_on_primary(self) -> float:
        """The share of values on the primary key and in the current format version."""
        return 100.0 if self.total == 0 else round(100.0 * self.on_primary / self.total, 1)


@dataclass
class RotationResult:
    table_name: str
    values_rotated: int = 0
    batches: int = 0
    seconds: float = 0.0
    usage: KeyUsage | None = None  # after the rotation


def _key_id_sql(column: str) -> str:
    quoted = quote_postgres(column)
    return f"convert_from(substring({quoted} FROM 4 FOR get_byte({quoted}, 2)), 'SQL_ASCII')"


def key_usage(conn: psycopg.Connection, catalog: CatalogTable, *, primary: str | None) -> KeyUsage:
    """Count the key ids and format versions in use per encrypted column (one scan of the table per column)."""
    usage = KeyUsage(table_name=catalog.table_name, primary=primary)
    relation = qualified(catalog.target_schema, catalog.target_table)
    for column in catalog.columns:
        if not column.encrypted:
            continue
        quoted = quote_postgres(column.target_name)
        rows = conn.execute(
            f"SELECT {_key_id_sql(column.target_name)}, get_byte({quoted}, 0), count(*) "  # noqa: S608 - quoted
            f"FROM {relation} WHERE {quoted} IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        usage.counts[column.target_name] = {
            (str(key_id), int(version)): int(count) for key_id, version, count in rows
        }
    return usage


def table_usage(conn: psycopg.Connection, schema: str, table: str, *, primary: str | None) -> KeyUsage | None:
    catalog = read_catalog(conn, schema, table)
    if catalog is None or not any(column.encrypted for column in catalog.columns):
        return None
    return key_usage(conn, catalog, primary=primary)


def rotate_table(  # noqa: PLR0913 - the key rotation service's call; every option is keyword-only
    conn: psycopg.Connection,
    *,
    table_name: str,
    schema: str,
    table: str,
    keyring: Keyring,
    pages_per_batch: int = DEFAULT_PAGES_PER_BATCH,
    log: Log | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RotationResult:
    """Re-encrypt every value of the target table `schema.table` that is not on the primary key or not in the
    current format version; return what was done. `table_name` is fdm's name of the table, whose lock the
    batches take.

    1. Read the protection catalog (what is encrypted, the row key, blind indexes).
    2. For each range of `pages_per_batch` pages, in one transaction: take the table's lock, select the rows of
       the range that hold a value on an older key or format version (FOR UPDATE), decrypt, re-encrypt with
       the primary key in the current format, recompute blind indexes (current version), and update them by
       ctid.
    3. Repeat the pass while values remain (rows an update moved to pages already visited), at most 3 times.
    4. Record in the catalog that the blind index of each searchable column with no value left in an older
       format is current, so that lookups stop computing older candidates.
    `on_batch(done_pages, total_pages)` reports progress; `should_stop()` ends the rotation between batches.
    """
    log = log or no_log
    stop = should_stop or (lambda: False)
    started = time.perf_counter()
    result = RotationResult(table_name=table_name)
    catalog = read_catalog(conn, schema, table)
    if catalog is None or not any(column.encrypted for column in catalog.columns):
        result.usage = KeyUsage(table_name=table_name, primary=keyring.primary)
        return result
    worker = _Rotator(conn, catalog, keyring, table_name=table_name)
    for _ in range(MAX_PASSES):
        pages = worker.page_count()
        for first in range(0, max(pages, 1), pages_per_batch):
            if stop():
                log("info", "rotation stopped", table=table_name, values_rotated=result.values_rotated)
                result.seconds = time.perf_counter() - started
                result.usage = key_usage(conn, catalog, primary=keyring.primary)
                return result
            rotated = worker.rotate_pages(first, first + pages_per_batch, log=log)
            result.values_rotated += rotated
            result.batches += 1
            if on_batch is not None:
                on_batch(min(first + pages_per_batch, pages), pages)
        usage = key_usage(conn, catalog, primary=keyring.primary)
        if usage.remaining == 0:
            break
    worker.finish_blind_indexes(log=log)
    result.usage = key_usage(conn, catalog, primary=keyring.primary)
    result.seconds = time.perf_counter() - started
    return result


class _Rotator:
    def __init__(self, conn: psycopg.Connection, catalog: CatalogTable, keyring: Keyring, *, table_name: str):
        self.conn = conn
        self.table_name = table_name  # fdm's name now: the sync lock is taken under it
        self.catalog = catalog
        self.keyring = keyring
        self.relation = qualified(catalog.target_schema, catalog.target_table)
        self.encrypted = [column for column in catalog.columns if column.encrypted]
        identity = {
            column.target_name: ColumnIdentity(
                catalog.target_schema, catalog.target_table, column.target_name
            )
            for column in self.encrypted
        }
        self.ciphers = {name: ColumnCipher(keyring, identity[name]) for name in identity}
        self.indexes = {
            column.target_name: BlindIndex(
                keyring, identity[column.target_name], bits=column.blind_index_bits
            )
            for column in self.encrypted
            if column.blind_index
        }
        self.dictionaries: dict[int, compress.Dictionary] | None = None

    def page_count(self) -> int:
        row = self.conn.execute(
            "SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::bigint", (self.relation,)
        ).fetchone()
        return int(row[0]) if row else 0

    def _lock(self, log: Log) -> None:
        """Take the table's lock for this transaction, waiting while a sync holds it."""
        waited = False
        while True:
            row = self.conn.execute(
                "SELECT pg_try_advisory_xact_lock(%s)", (table_lock_key(self.table_name),)
            ).fetchone()
            if row and row[0]:
                return
            if not waited:
                log("info", "waiting for a run of this table to finish", table=self.table_name)
                waited = True
            time.sleep(LOCK_WAIT_SECONDS)

    def rotate_pages(self, first: int, end: int, *, log: Log) -> int:
        primary = self.keyring.primary.encode("ascii")
        names = [column.target_name for column in self.encrypted]
        stale = " OR ".join(
            f"({quote_postgres(name)} IS NOT NULL AND (get_byte({quote_postgres(name)}, 0) <> {FORMAT_VERSION} "
            f"OR substring({quote_postgres(name)} FROM 4 FOR get_byte({quote_postgres(name)}, 2)) <> %s::bytea))"
            for name in names
        )
        key = list(self.catalog.row_key)
        indexes = [column.blind_index or "" for column in self.encrypted if column.blind_index]
        selected = ", ".join(["ctid::text", *(quote_postgres(name) for name in key + names + indexes)])
        with self.conn.transaction():
            self._lock(log)
            rows = self.conn.execute(
                f"SELECT {selected} FROM {self.relation} "  # noqa: S608 - identifiers quoted
                f"WHERE ctid >= %s::tid AND ctid < %s::tid AND ({stale}) FOR UPDATE",
                (f"({first},0)", f"({end},0)", *([primary] * len(names))),
            ).fetchall()
            if not rows:
                return 0
            stored = {
                name: [row[1 + position] for row in rows]
                for position, name in enumerate(key + names + indexes)
            }
            keys = (
                row_keys_from_values([[stored[name][i] for name in key] for i in range(len(rows))])
                if key
                else None
            )
            updates: dict[str, list[Any]] = {}
            rotated = 0
            for column in self.encrypted:
                new_values, plains = self._reencrypt(column.target_name, stored[column.target_name], keys)
                rotated += len(plains)
                updates[column.target_name] = new_values
                if column.blind_index:
                    updates[column.blind_index] = self._blind_index(
                        column.target_name, stored[column.blind_index], plains
                    )
            assignments = ", ".join(f"{quote_postgres(name)} = v.{quote_postgres(name)}" for name in updates)
            value_columns = ", ".join(quote_postgres(name) for name in updates)
            arrays = ", ".join("%s::bytea[]" for _ in updates)
            self.conn.execute(
                f"UPDATE {self.relation} AS t SET {assignments} "  # noqa: S608 - identifiers quoted
                f"FROM unnest(%s::text[]::tid[], {arrays}) AS v(row_ctid, {value_columns}) "
                "WHERE t.ctid = v.row_ctid",
                ([row[0] for row in rows], *updates.values()),
            )
            return rotated

    def _reencrypt(
        self, column: str, values: list[Any], keys: list[bytes] | None
    ) -> tuple[list[bytes | None], dict[int, bytes]]:
        """The column's new stored values, and the (uncompressed) plaintexts of the ones re-encrypted, by row.

        Values already on the primary key and in the current format are kept as they are, not decrypted.
        """
        cipher = self.ciphers[column]
        stored: list[bytes | None] = [bytes(value) if value is not None else None for value in values]
        plains: dict[int, bytes] = {}
        compressed: set[int] = set()
        for index, value in enumerate(stored):
            if value is None or self._current(parse_envelope(value)):
                continue
            plain, flags = cipher.decrypt_one(value, keys[index] if keys else None)
            plains[index] = plain
            if flags & FLAG_COMPRESSED:
                compressed.add(index)
        for flag in (True, False):
            group = [index for index in plains if (index in compressed) == flag]
            if not group:
                continue
            group_keys = pa.array([keys[index] for index in group], pa.binary()) if keys else None
            sealed = cipher.encrypt(
                pa.array([plains[index] for index in group], pa.binary()),
                row_keys=group_keys,
                compressed=flag,
            ).to_pylist()
            for index, envelope in zip(group, sealed, strict=True):
                stored[index] = envelope if isinstance(envelope, bytes) else None
        for index in compressed:
            plains[index] = self._decompress(plains[index])
        return stored, plains

    def _current(self, envelope: Envelope) -> bool:
        return envelope.key_id == self.keyring.primary and envelope.version == FORMAT_VERSION

    def finish_blind_indexes(self, *, log: Log) -> None:
        """Record the current blind index version for each searchable column whose catalog row says older and
        that holds no value in an older format any more (checked under the table's lock, which syncs take)."""
        for column in self.encrypted:
            if not column.blind_index or column.blind_index_version >= BLIND_INDEX_VERSION:
                continue
            quoted = quote_postgres(column.target_name)
            with self.conn.transaction():
                self._lock(log)
                row = self.conn.execute(
                    f"SELECT EXISTS (SELECT 1 FROM {self.relation} WHERE {quoted} IS NOT NULL "  # noqa: S608
                    f"AND get_byte({quoted}, 0) <> {FORMAT_VERSION})"
                ).fetchone()
                if row and not row[0]:
                    set_blind_index_version(
                        self.conn,
                        schema=self.catalog.target_schema,
                        table=self.catalog.target_table,
                        column=column.target_name,
                        version=BLIND_INDEX_VERSION,
                    )

    def _decompress(self, frame: bytes) -> bytes:
        if self.dictionaries is None:
            self.dictionaries = load_dictionaries(
                self.conn, schema=self.catalog.target_schema, table=self.catalog.target_table
            )
        value = compress.decompress_array(pa.array([frame], pa.binary()), self.dictionaries)[0].as_py()
        return value if isinstance(value, bytes) else b""

    def _blind_index(self, column: str, old: list[Any], plains: dict[int, bytes]) -> list[bytes | None]:
        """The blind index column: recomputed with the primary key for the re-encrypted rows, kept elsewhere."""
        values: list[bytes | None] = [bytes(value) if value is not None else None for value in old]
        if not plains:
            return values
        rows = list(plains)
        computed = (
            self.indexes[column].compute(pa.array([plains[row] for row in rows], pa.binary())).to_pylist()
        )
        for row, value in zip(rows, computed, strict=True):
            values[row] = value if isinstance(value, bytes) else None
        return values
