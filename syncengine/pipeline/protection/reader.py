"""Reading a synced table back: pages of rows in primary-key order, equality filters (blind indexes for
encrypted columns), compressed columns decompressed, encrypted columns decrypted or masked.

Who may read decrypted values, and the audit record of each such read, are the caller's business (the
Django side, `syncengine.protected_data`); this module only does what it is told, with the keyring it is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pyarrow as pa

from syncengine.pipeline.errors import ConfigurationError, TerminalError
from syncengine.pipeline.identifiers import quote_postgres
from syncengine.pipeline.protection import compress
from syncengine.pipeline.protection.blind_index import blind_index_candidates
from syncengine.pipeline.protection.catalog import CatalogTable, read_catalog
from syncengine.pipeline.protection.codec import decode_plaintext, plaintext_bytes
from syncengine.pipeline.protection.crypto import FLAG_COMPRESSED, ColumnCipher, ColumnIdentity
from syncengine.pipeline.protection.dictionaries import load_dictionaries
from syncengine.pipeline.protection.keyring import Keyring
from syncengine.pipeline.protection.plan import BLIND_INDEX_SUFFIX, ColumnProtection
from syncengine.pipeline.protection.rowkeys import row_keys_from_values
from syncengine.pipeline.schema.target import TargetTable, inspect_target, qualified
from syncengine.pipeline.spec import TargetRef
from syncengine.pipeline.typemap import BYTEA, wire_type

MASK = "[encrypted]"
MAX_PAGE_SIZE = 1000
# A blind index lookup fetches candidates in rounds of this many rows until the page is full.
CANDIDATE_ROUND = 500


class ReadError(TerminalError):
    """The request cannot be answered as asked: an unknown column, a filter on a column that cannot be
    filtered, a value that is not of the column's type. Says which."""


class TableNotSynced(ReadError):
    """The target table does not exist yet: no run has created it."""


@dataclass
class Page:
    columns: list[str]
    rows: list[dict[str, Any]]
    next_after: list[Any] | None  # the last row's key values; pass as `after` for the next page
    decrypted_columns: list[str] = field(default_factory=list)  # encrypted columns returned in clear
    masked_columns: list[str] = field(default_factory=list)
    key: list[str] = field(default_factory=list)  # the columns the pages are ordered by
    searched_columns: list[str] = field(
        default_factory=list
    )  # encrypted columns filtered on (decrypted to compare)


@dataclass(frozen=True)
class _Source:
    table_name: str
    target: TargetTable
    catalog: CatalogTable | None

    @property
    def protected(self) -> dict[str, ColumnProtection]:
        return self.catalog.by_target() if self.catalog else {}

    @property
    def hidden(self) -> set[str]:
        """Blind index columns, never shown: those the catalog names, and, whatever the catalog says or lacks,
        every `bytea` column named like one (`<column>_bidx`) that the catalog does not describe as a stored
        value of its own."""
        protected = self.protected
        named = {column.blind_index for column in protected.values() if column.blind_index}
        return named | {
            column.name
            for column in self.target.columns
            if column.name.endswith(BLIND_INDEX_SUFFIX)
            and column.type == BYTEA
            and column.name not in protected
        }

    def visible(self) -> list[str]:
        return [column.name for column in self.target.columns if column.name not in self.hidden]

    def type_of(self, name: str) -> str:
        column = self.target.column(name)
        assert column is not None
        return column.type


def describe(conn: psycopg.Connection, *, table_name: str, schema: str, table: str) -> _Source:
    target = inspect_target(conn, schema, table)
    if target is None:
        raise TableNotSynced(
            f"{schema}.{table} does not exist yet: the table has not been synced", table=table_name
        )
    return _Source(table_name=table_name, target=target, catalog=read_catalog(conn, schema, table))


def read_rows(  # noqa: PLR0913 - the data API's and the decrypt command's call; all keyword-only
    conn: psycopg.Connection,
    *,
    table_name: str,
    schema: str,
    table: str,
    keyring: Keyring | None,
    decrypt: bool,
    filters: Mapping[str, str] | None = None,
    after: Sequence[Any] | None = None,
    limit: int = 100,
) -> Page:
    """One page of rows.

    1. Read the target's columns and primary key from the catalogs, and fdm's protection catalog.
    2. Turn the filters into SQL: plain columns by `=` with the value cast to the column's type; encrypted
       searchable columns by their blind index (one candidate value per key in the keyring and per blind index
       version the column may hold), the candidates then
       decrypted and compared exactly; anything else is refused.
    3. Fetch in primary-key order (ctid order for a table without one) after `after`, decode protected columns,
       and stop at `limit` rows.
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ReadError(f"limit must be between 1 and {MAX_PAGE_SIZE}", table=table_name)
    source = describe(conn, table_name=table_name, schema=schema, table=table)
    protected = source.protected
    filters = dict(filters or {})
    if source.catalog and any(column.encrypted for column in protected.values()) and keyring is None:
        if decrypt or any(name in protected and protected[name].encrypted for name in filters):
            raise ConfigurationError(
                "reading encrypted columns needs the keyring (FDM_ENCRYPTION_KEYS)", table=table_name
            )
    key_length = len(source.target.primary_key) or 1  # ctid stands in for a missing key
    if after is not None and len(after) != key_length:
        raise ReadError(
            "the cursor does not fit the table's key (it changed since the page was read); start from the first "
            "page",
            table=table_name,
        )
    reading = _Reading(
        source=source,
        filters=_filter_conditions(source, filters, keyring),
        decoder=_Decoder.of(conn, source, keyring),
        decrypt=decrypt,
    )
    rows, last, more = _fetch_page(conn, reading, after=after, limit=limit)
    if not decrypt:
        for record in rows:
            _mask(record, protected)
    visible = source.visible()
    encrypted = [name for name in visible if name in protected and protected[name].encrypted]
    return Page(
        columns=visible,
        rows=rows,
        next_after=last if more else None,
        decrypted_columns=encrypted if decrypt else [],
        masked_columns=[] if decrypt else encrypted,
        key=reading.key,
        searched_columns=sorted(reading.filters.exact),
    )


@dataclass
class _Filters:
    conditions: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    # Encrypted columns whose decrypted value must match.
    exact: dict[str, bytes] = field(default_factory=dict)


def _filter_conditions(source: _Source, filters: Mapping[str, str], keyring: Keyring | None) -> _Filters:
    visible, protected, table_name = source.visible(), source.protected, source.table_name
    result = _Filters()
    for name, value in filters.items():
        if name not in visible:
            raise ReadError(f"cannot filter on {name!r}: the table has no such column", table=table_name)
        protection = protected.get(name)
        if protection is None:
            result.conditions.append(f"{quote_postgres(name)} = CAST(%s AS {source.type_of(name)})")
            result.params.append(value)
        elif protection.encrypted and protection.blind_index and keyring is not None:
            plain = _filter_plaintext(value, protection)
            result.conditions.append(f"{quote_postgres(protection.blind_index)} = ANY(%s)")
            result.params.append(
                blind_index_candidates(
                    keyring,
                    _identity(source, name),
                    plain,
                    bits=protection.blind_index_bits,
                    oldest_version=protection.blind_index_version,
                )
            )
            result.exact[name] = plain
        else:
            what = (
                "encrypted without a blind index (not searchable)" if protection.encrypted else "compressed"
            )
            raise ReadError(f"cannot filter on {name!r}: the column is {what}", table=table_name, column=name)
    return result


@dataclass(frozen=True)
class _Decoder:
    """What turns stored bytes back into values: the column ciphers and the compression dictionaries."""

    protected: Mapping[str, ColumnProtection]
    ciphers: Mapping[str, ColumnCipher]
    dictionaries: Mapping[int, compress.Dictionary]

    @classmethod
    def of(cls, conn: psycopg.Connection, source: _Source, keyring: Keyring | None) -> _Decoder:
        protected = source.protected
        dictionaries = (
            load_dictionaries(conn, schema=source.target.schema, table=source.target.name)
            if any(column.compressed for column in protected.values())
            else {}
        )
        ciphers = {
            name: ColumnCipher(keyring, _identity(source, name))
            for name, column in protected.items()
            if column.encrypted and keyring is not None
        }
        return cls(protected=protected, ciphers=ciphers, dictionaries=dictionaries)


@dataclass(frozen=True)
class _Reading:
    source: _Source
    filters: _Filters
    decoder: _Decoder
    decrypt: bool

    @property
    def key(self) -> list[str]:
        return list(self.source.target.primary_key)

    @property
    def order(self) -> list[str]:
        return [quote_postgres(name) for name in self.key] if self.key else ["ctid"]

    def select_sql(self, after: list[Any] | None, fetch: int) -> tuple[str, list[Any]]:
        """The next round's query: the filters, rows after `after` in key order, at most `fetch` rows."""
        source = self.source
        where = list(self.filters.conditions)
        params = list(self.filters.params)
        if after is not None:
            if self.key:
                casts = ", ".join(f"CAST(%s AS {source.type_of(name)})" for name in self.key)
                where.append(f"({', '.join(self.order)}) > ({casts})")
                params.extend(after)
            else:
                where.append("ctid > CAST(%s AS tid)")
                params.append(after[0])
        relation = qualified(source.target.schema, source.target.name)
        selected = ", ".join([*(quote_postgres(name) for name in source.visible()), "ctid::text"])
        sql = (
            f"SELECT {selected} FROM {relation}"  # noqa: S608 - identifiers quoted, values bound
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY {', '.join(self.order)} LIMIT {int(fetch)}"
        )
        return sql, params


def _fetch_page(
    conn: psycopg.Connection, reading: _Reading, *, after: Sequence[Any] | None, limit: int
) -> tuple[list[dict[str, Any]], list[Any] | None, bool]:
    """Rows of one page, the cursor after the last row read, and whether more rows may follow."""
    visible, key, exact = reading.source.visible(), reading.key, reading.filters.exact
    protected = reading.decoder.protected
    # Ciphertexts are bound to the row key the sync used (the catalog's), whatever key the target has now.
    catalog = reading.source.catalog
    bound = [name for name in (list(catalog.row_key) if catalog else key) if name in visible]
    rows: list[dict[str, Any]] = []
    cursor_values: list[Any] | None = list(after) if after is not None else None
    exhausted = stopped_early = False
    while len(rows) < limit and not exhausted:
        fetch = CANDIDATE_ROUND if exact else limit - len(rows)
        sql, params = reading.select_sql(cursor_values, fetch)
        try:
            fetched = conn.execute(sql, params).fetchall()
        except psycopg.errors.DataError as exc:
            raise ReadError(
                f"a filter or cursor value does not fit its column: {exc.diag.message_primary}",
                table=reading.source.table_name,
            ) from None
        exhausted = len(fetched) < fetch
        records = [dict(zip(visible, row[:-1], strict=True)) for row in fetched]
        keys = (
            row_keys_from_values([[record[name] for name in bound] for record in records]) if bound else None
        )
        _decode(records, reading.decoder, keys, decrypt=reading.decrypt or bool(exact))
        for position, (record, row) in enumerate(zip(records, fetched, strict=True)):
            cursor_values = [record[name] for name in key] if key else [row[-1]]
            if all(
                record[name] == decode_plaintext(plain, protected[name].plain_type)
                for name, plain in exact.items()
            ):
                rows.append(record)
                if len(rows) == limit:
                    stopped_early = position < len(records) - 1
                    break
    return rows, cursor_values, len(rows) == limit and (stopped_early or not exhausted)


def _identity(source: _Source, column: str) -> ColumnIdentity:
    """The identity the column's values are bound to: the target table the catalog describes."""
    if source.catalog is not None:
        return ColumnIdentity(source.catalog.target_schema, source.catalog.target_table, column)
    return ColumnIdentity(source.target.schema, source.target.name, column)


def _filter_plaintext(value: str, protection: ColumnProtection) -> bytes:
    """The plaintext bytes a filter value stands for (as `codec.plaintext_bytes` wrote them)."""
    wire = wire_type(protection.plain_type)
    if wire is None or pa.types.is_string(wire) or pa.types.is_binary(wire):
        return value.encode("utf-8")
    try:
        typed = pa.array([value], pa.string()).cast(wire)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise ReadError(
            f"{value!r} is not a value of type {protection.plain_type}", column=protection.target_name
        ) from None
    encoded = plaintext_bytes(typed)[0].as_py()
    return encoded if isinstance(encoded, bytes) else b""


def _decode(
    records: list[dict[str, Any]], decoder: _Decoder, row_keys: list[bytes] | None, *, decrypt: bool
) -> None:
    """Replace stored bytes by values, in place: decompress, and decrypt when asked (else leave for masking)."""
    dictionaries = decoder.dictionaries
    for name, protection in decoder.protected.items():
        if name not in (records[0] if records else {}):
            continue
        stored = [record[name] for record in records]
        if protection.encrypted:
            if not decrypt:
                continue
            cipher = decoder.ciphers[name]
            plain: list[bytes | None] = []
            flags: list[int] = []
            for index, value in enumerate(stored):
                if value is None:
                    plain.append(None)
                    flags.append(0)
                    continue
                text, flag = cipher.decrypt_one(bytes(value), row_keys[index] if row_keys else None)
                plain.append(text)
                flags.append(flag)
            if any(flag & FLAG_COMPRESSED for flag in flags):
                plain = _decompress(plain, dictionaries)
        elif protection.compressed:
            plain = _decompress(
                [bytes(value) if value is not None else None for value in stored], dictionaries
            )
        else:
            continue
        for record, value in zip(records, plain, strict=True):
            record[name] = None if value is None else decode_plaintext(value, protection.plain_type)


def _decompress(
    frames: list[bytes | None], dictionaries: Mapping[int, compress.Dictionary]
) -> list[bytes | None]:
    values = compress.decompress_array(pa.array(frames, pa.binary()), dictionaries).to_pylist()
    return [value if isinstance(value, bytes) or value is None else bytes(value) for value in values]


def _mask(record: dict[str, Any], protected: Mapping[str, ColumnProtection]) -> None:
    for name, protection in protected.items():
        if protection.encrypted and name in record and record[name] is not None:
            record[name] = MASK


def decode_rows(
    conn: psycopg.Connection,
    records: list[dict[str, Any]],
    *,
    table_name: str,
    target: TargetRef,
    keyring: Keyring | None,
) -> None:
    """Decrypt and decompress the protected columns of `records` in place, in memory (reconciliation compares
    them with the source this way). Each record carries the catalog's row key columns, which ciphertexts are
    bound to."""
    source = describe(conn, table_name=table_name, schema=target.schema, table=target.table)
    if any(column.encrypted for column in source.protected.values()) and keyring is None:
        raise ConfigurationError(
            "comparing encrypted columns needs the keyring (FDM_ENCRYPTION_KEYS)", table=table_name
        )
    bound = list(source.catalog.row_key) if source.catalog else []
    keys = row_keys_from_values([[record[name] for name in bound] for record in records]) if bound else None
    if records:
        _decode(records, _Decoder.of(conn, source, keyring), keys, decrypt=True)
