"""Encryption, blind indexes, compression and key rotation, end to end: the real connector against the
emulator, real syncs into real PostgreSQL, and the stored bytes inspected on disk."""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import psycopg
import pyarrow as pa
import pytest

from syncengine.pipeline.bootstrap import ensure_schemas
from syncengine.pipeline.errors import ConfigurationError, SchemaDriftError
from syncengine.pipeline.protection import reader, rotation
from syncengine.pipeline.protection.blind_index import BlindIndex
from syncengine.pipeline.protection.catalog import read_catalog
from syncengine.pipeline.protection.crypto import (
    FLAG_COMPRESSED,
    ColumnCipher,
    ColumnIdentity,
    DecryptionError,
    key_id_of,
)
from syncengine.pipeline.protection.keyring import Keyring
from syncengine.pipeline.protection.rowkeys import row_keys_from_values
from syncengine.pipeline.schema.columns import ColumnPlan, TablePlan
from syncengine.pipeline.schema.drift import plan_drift
from syncengine.pipeline.schema.target import TargetColumn, TargetTable
from syncengine.pipeline.spec import (
    CompressionMode,
    CompressionSpec,
    EncryptionMode,
    EncryptionSpec,
    SyncMode,
)
from syncengine.pipeline.typemap import SourceColumn
from tests.pipeline.test_types import _create as create_all_types

KEYRING = Keyring.generate("k1")
IBANS = ["DE89370400440532013000", "GB29NWBK60161331926819", "FR1420041010050500013M02606"]
ACCOUNTS = ["ACC-7719-0001", "ACC-7719-0002", "ACC-7719-0003"]


def _transactions(source, rows: int = 30) -> None:
    source.sql(
        f"CREATE TABLE {source.table('TRANSACTIONS')} (TXN_ID NUMBER(38,0) NOT NULL, ACCOUNT_NUMBER VARCHAR, "
        "IBAN VARCHAR, AMOUNT NUMBER(12,2), DESCRIPTION VARCHAR, METADATA VARIANT, UPDATED_AT TIMESTAMP_NTZ, "
        "PRIMARY KEY (TXN_ID))"
    )
    for start in range(0, rows, 10):
        values = ", ".join(
            f"({i}, '{ACCOUNTS[i % 3]}', '{IBANS[i % 3]}', {i}.25, 'card payment {i} at the corner shop', "
            f"'2024-01-01 00:00:{i % 60:02d}')"
            for i in range(start, min(start + 10, rows))
        )
        source.sql(
            f"INSERT INTO {source.table('TRANSACTIONS')} (TXN_ID, ACCOUNT_NUMBER, IBAN, AMOUNT, DESCRIPTION, "
            f"UPDATED_AT) VALUES {values}"
        )
    source.sql(f'UPDATE {source.table("TRANSACTIONS")} SET METADATA = PARSE_JSON(\'{{"channel": "pos"}}\')')


def _protected(make_spec, **overrides):
    values = {
        "primary_key": ("TXN_ID",),
        "encryption": EncryptionSpec(
            mode=EncryptionMode.COLUMNS,
            columns=("ACCOUNT_NUMBER", "IBAN", "AMOUNT"),
            searchable=("ACCOUNT_NUMBER",),
        ),
        "compression": CompressionSpec(mode=CompressionMode.COLUMNS, columns=("DESCRIPTION", "METADATA")),
    }
    values.update(overrides)
    return make_spec("TRANSACTIONS", **values)


def _read(  # noqa: PLR0913 - keyword-only test helper
    dsn: str,
    keyring: Keyring | None = KEYRING,
    *,
    decrypt: bool = True,
    table="transactions",
    table_name: str | None = None,
    **kwargs,
):
    with psycopg.connect(dsn, autocommit=True) as conn:
        return reader.read_rows(
            conn,
            table_name=table_name or table,
            schema="public",
            table=table,
            keyring=keyring,
            decrypt=decrypt,
            **kwargs,
        )


def _table_file_bytes(target, relation: str) -> bytes:
    """The heap and TOAST files of a table as PostgreSQL wrote them to disk."""
    target("CHECKPOINT")
    files = [
        path
        for (path,) in target(
            "SELECT pg_relation_filepath(oid) FROM pg_class WHERE oid = %s::regclass "
            "OR oid = (SELECT reltoastrelid FROM pg_class WHERE oid = %s::regclass)",
            (relation, relation),
        )
        if path
    ]
    return b"".join(target("SELECT pg_read_binary_file(%s)", (path,))[0][0] for path in files)


def test_encrypted_and_compressed_columns_are_stored_as_bytea_and_read_back_exactly(
    source, make_spec, sync, target, scratch_database
):
    _transactions(source)
    result = sync(_protected(make_spec), keyring=KEYRING)

    types = dict(
        target(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'public.transactions'::regclass AND attnum > 0 ORDER BY attnum"
        )
    )
    assert types == {
        "txn_id": "numeric(38,0)",
        "account_number": "bytea",
        "iban": "bytea",
        "amount": "bytea",
        "description": "bytea",
        "metadata": "bytea",
        "updated_at": "timestamp without time zone",
        "account_number_bidx": "bytea",
    }
    assert target("SELECT indexdef FROM pg_indexes WHERE indexname = 'transactions_account_number_bidx_idx'")
    stored = target("SELECT account_number, iban, amount FROM public.transactions ORDER BY txn_id LIMIT 1")[0]
    assert all(key_id_of(bytes(value)) == "k1" for value in stored)

    page = _read(scratch_database, limit=1000)
    assert page.columns == [
        "txn_id",
        "account_number",
        "iban",
        "amount",
        "description",
        "metadata",
        "updated_at",
    ]
    assert len(page.rows) == 30
    row = page.rows[7]
    assert row["account_number"] == ACCOUNTS[1] and row["iban"] == IBANS[1]
    assert row["amount"] == Decimal("7.25")
    assert row["description"] == "card payment 7 at the corner shop"
    assert row["metadata"] == {"channel": "pos"}
    assert page.decrypted_columns == ["account_number", "iban", "amount"]

    protection = result.checks["protection"]
    assert protection["description"]["bytes_plain"] == sum(
        len(f"card payment {i} at the corner shop") for i in range(30)
    )
    assert result.bytes_before_compression > 0 and result.bytes_after_compression > 0
    assert (
        result.bytes_before_compression
        == protection["description"]["bytes_plain"] + protection["metadata"]["bytes_plain"]
    )
    # Plaintext sizes of encrypted columns would undo their padding for anyone who reads run records.
    for encrypted in ("account_number", "iban", "amount"):
        assert protection[encrypted] == {
            "encrypted": True,
            "bytes_stored": protection[encrypted]["bytes_stored"],
        }


def test_plaintext_of_encrypted_columns_is_nowhere_in_the_target(source, make_spec, sync, target):
    _transactions(source)
    messages: list[str] = []
    result = sync(
        _protected(make_spec),
        keyring=KEYRING,
        log=lambda level, message, **fields: messages.append(f"{message} {fields}"),
    )
    on_disk = _table_file_bytes(target, "public.transactions")
    assert len(on_disk) > 8192
    everything_fdm_keeps = on_disk + b"".join(
        _table_file_bytes(target, f"_fdm.{name}") for name in ("sync_state", "protected_columns")
    )
    recorded = (str(result) + " ".join(messages)).encode()
    for secret in [*IBANS, *ACCOUNTS]:
        assert secret.encode() not in everything_fdm_keeps
        assert secret.encode() not in recorded
    assert b"7.25" not in on_disk


def test_blind_index_lookups_return_exactly_the_matching_rows(source, make_spec, sync, scratch_database):
    _transactions(source, rows=60)
    sync(_protected(make_spec), keyring=KEYRING)

    page = _read(scratch_database, filters={"account_number": ACCOUNTS[2]}, limit=1000)
    assert [row["txn_id"] for row in page.rows] == [Decimal(i) for i in range(60) if i % 3 == 2]
    assert _read(scratch_database, filters={"account_number": "ACC-NOT-THERE"}).rows == []

    masked = _read(scratch_database, decrypt=False, filters={"account_number": ACCOUNTS[0]}, limit=5)
    assert [row["txn_id"] for row in masked.rows] == [Decimal(i) for i in (0, 3, 6, 9, 12)]
    assert {row["iban"] for row in masked.rows} == {reader.MASK}
    assert masked.masked_columns == ["account_number", "iban", "amount"]
    assert masked.next_after == [Decimal(12)]

    with pytest.raises(reader.ReadError, match="encrypted without a blind index"):
        _read(scratch_database, filters={"iban": IBANS[0]})
    with pytest.raises(reader.ReadError, match="compressed"):
        _read(scratch_database, filters={"description": "x"})


def test_pages_follow_the_primary_key(source, make_spec, sync, scratch_database):
    _transactions(source, rows=25)
    sync(_protected(make_spec), keyring=KEYRING)
    seen = []
    after = None
    while True:
        page = _read(scratch_database, after=after, limit=10)
        seen.extend(int(row["txn_id"]) for row in page.rows)
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == list(range(25))


def test_a_ciphertext_copied_to_another_row_column_or_table_does_not_decrypt(
    source, make_spec, sync, target, scratch_database
):
    _transactions(source, rows=3)
    sync(_protected(make_spec), keyring=KEYRING)
    target(
        "UPDATE public.transactions SET iban = (SELECT iban FROM public.transactions WHERE txn_id = 2) WHERE txn_id = 1"
    )
    with pytest.raises(DecryptionError, match="transactions.iban"):
        _read(scratch_database)

    target("UPDATE public.transactions SET iban = account_number WHERE txn_id = 1")
    with pytest.raises(DecryptionError):
        _read(scratch_database)


def test_every_type_round_trips_through_encryption_and_compression(
    source, make_spec, sync, target, scratch_database
):
    create_all_types(source)
    sync(make_spec("ALL_TYPES", target_table="plain"))
    sync(
        make_spec(
            "ALL_TYPES",
            target_table="all_types",
            encryption=EncryptionSpec(mode=EncryptionMode.ALL),
            compression=CompressionSpec(
                mode=CompressionMode.COLUMNS, columns=("DOC", "OBJ", "ARR", "BLOB", "NOTE")
            ),
        ),
        keyring=KEYRING,
    )
    names = [
        name
        for (name,) in target(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'public.plain'::regclass AND attnum > 0 ORDER BY attnum"
        )
    ]
    plain = [dict(zip(names, row, strict=True)) for row in target("SELECT * FROM public.plain ORDER BY id")]
    decrypted = _read(scratch_database, table="all_types", limit=100).rows
    assert len(decrypted) == len(plain) == 7
    for expected, actual in zip(plain, decrypted, strict=True):
        for name, value in expected.items():
            got = actual[name]
            if isinstance(value, float) and math.isnan(value):
                assert math.isnan(got)
            else:
                assert got == value, (expected["id"], name)
    assert target(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.all_types'::regclass "
        "AND attnum > 0 AND atttypid = 'bytea'::regtype"
    ) == [(16,)]


def test_incremental_runs_encrypt_updates_and_keep_rows_readable(source, make_spec, sync, scratch_database):
    _transactions(source, rows=10)
    spec = _protected(make_spec, watermark_column="UPDATED_AT", mode=SyncMode.INCREMENTAL)
    sync(spec, keyring=KEYRING)
    source.sql(
        f"UPDATE {source.table('TRANSACTIONS')} SET IBAN = 'NL91ABNA0417164300', UPDATED_AT = '2024-02-01' "
        "WHERE TXN_ID = 4"
    )
    second = sync(spec, keyring=KEYRING)
    assert second.mode == "incremental" and second.rows_updated >= 1
    rows = {int(row["txn_id"]): row for row in _read(scratch_database, limit=100).rows}
    assert rows[4]["iban"] == "NL91ABNA0417164300" and rows[5]["iban"] == IBANS[2]


def test_turning_encryption_on_reloads_the_table_in_full(source, make_spec, sync, target, scratch_database):
    _transactions(source, rows=5)
    incremental = {"watermark_column": "UPDATED_AT", "mode": SyncMode.INCREMENTAL}
    sync(make_spec("TRANSACTIONS", primary_key=("TXN_ID",), **incremental))
    assert target("SELECT iban FROM public.transactions WHERE txn_id = 1") == [(IBANS[1],)]

    result = sync(_protected(make_spec, **incremental), keyring=KEYRING)
    assert result.mode == "full"
    assert any("now encrypted or compressed" in change for change in result.drift)
    assert target(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
        "'public.transactions'::regclass AND attname = 'iban'"
    ) == [("bytea",)]
    assert _read(scratch_database, limit=10).rows[1]["iban"] == IBANS[1]


def test_an_incremental_run_never_changes_a_column_to_ciphertext(make_spec):
    """Only a full load, which replaces every row, may empty a column to change it to bytea."""
    column = ColumnPlan(SourceColumn("IBAN", "TEXT"), "iban", "bytea", plain_type="text")
    plan = TablePlan(columns=(column,), primary_key=(), watermark=None)
    existing = TargetTable("public", "transactions", (TargetColumn("iban", "text", False),), (), ())
    with pytest.raises(SchemaDriftError, match="only a full load"):
        plan_drift(make_spec("TRANSACTIONS"), plan, existing, full_load=False)
    drift = plan_drift(make_spec("TRANSACTIONS"), plan, existing, full_load=True)
    assert drift.ddl == (
        'ALTER TABLE "public"."transactions" ALTER COLUMN "iban" TYPE bytea USING NULL::bytea',
    )


def test_primary_key_and_incremental_columns_are_never_encrypted(source, make_spec, sync):
    _transactions(source, rows=1)
    with pytest.raises(ConfigurationError, match="primary key column cannot be encrypted"):
        sync(
            _protected(
                make_spec, encryption=EncryptionSpec(mode=EncryptionMode.COLUMNS, columns=("TXN_ID",))
            ),
            keyring=KEYRING,
        )
    with pytest.raises(ConfigurationError, match="incremental column cannot be encrypted"):
        sync(
            _protected(
                make_spec,
                watermark_column="UPDATED_AT",
                mode=SyncMode.INCREMENTAL,
                encryption=EncryptionSpec(mode=EncryptionMode.COLUMNS, columns=("UPDATED_AT",)),
            ),
            keyring=KEYRING,
        )
    with pytest.raises(ConfigurationError, match="only TEXT, VARIANT, OBJECT, ARRAY and BINARY"):
        sync(
            _protected(
                make_spec, compression=CompressionSpec(mode=CompressionMode.COLUMNS, columns=("AMOUNT",))
            ),
            keyring=KEYRING,
        )


def test_rotation_interrupted_half_way_and_resumed_moves_every_value_to_the_new_key(
    source, make_spec, sync, target, scratch_database
):
    _transactions(source, rows=400)
    sync(_protected(make_spec, batch_size=1000), keyring=KEYRING)
    pages = target("SELECT pg_relation_size('public.transactions') / 8192")[0][0]
    assert pages >= 4

    rotated = KEYRING.with_new_primary("k2")
    batches = 0

    def stop_half_way() -> bool:
        return batches >= pages // 2

    def count(done: int, total: int) -> None:
        nonlocal batches
        batches += 1

    with psycopg.connect(scratch_database, autocommit=True) as conn:
        first = rotation.rotate_table(
            conn,
            table_name="transactions",
            schema="public",
            table="transactions",
            keyring=rotated,
            pages_per_batch=1,
            on_batch=count,
            should_stop=stop_half_way,
        )
    assert first.usage is not None
    assert 0 < first.usage.on_primary < first.usage.total
    assert set(first.usage.key_ids) == {"k1", "k2"}

    # Readable and searchable with both keys in the keyring while values are on either.
    page = _read(scratch_database, rotated, limit=1000)
    assert [row["iban"] for row in page.rows] == [IBANS[i % 3] for i in range(400)]
    found = _read(scratch_database, rotated, filters={"account_number": ACCOUNTS[1]}, limit=1000)
    assert len(found.rows) == len([i for i in range(400) if i % 3 == 1])

    with psycopg.connect(scratch_database, autocommit=True) as conn:
        second = rotation.rotate_table(
            conn,
            table_name="transactions",
            schema="public",
            table="transactions",
            keyring=rotated,
            pages_per_batch=2,
        )
    assert second.usage is not None and second.usage.remaining == 0
    assert second.values_rotated + first.values_rotated == 400 * 3
    only_new = Keyring(primary="k2", keys={"k2": rotated.key("k2")})
    page = _read(scratch_database, only_new, limit=1000)
    assert [row["account_number"] for row in page.rows] == [ACCOUNTS[i % 3] for i in range(400)]
    found = _read(scratch_database, only_new, filters={"account_number": ACCOUNTS[1]}, limit=1000)
    assert len(found.rows) == len([i for i in range(400) if i % 3 == 1])


def test_compression_true_picks_documents_binary_and_unbounded_text(source, make_spec, sync, target):
    create_all_types(source)
    result = sync(make_spec("ALL_TYPES", compression=CompressionSpec(mode=CompressionMode.AUTO)))
    compressed = sorted(
        name for (name,) in target("SELECT column_name FROM _fdm.protected_columns WHERE compressed")
    )
    assert compressed == ["arr", "blob", "doc", "note", "obj"]  # SHORT is VARCHAR(10): a code, left as text
    assert target(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'public.all_types'::regclass "
        "AND attname = 'short'"
    ) == [("text",)]
    assert result.bytes_before_compression > 100_000  # the 100,000-character note among them
    assert result.bytes_after_compression < result.bytes_before_compression / 10


def test_incremental_runs_reuse_the_dictionary_and_a_full_load_replaces_it(
    source, make_spec, sync, target, scratch_database
):
    _transactions(source, rows=600)
    spec = _protected(make_spec, watermark_column="UPDATED_AT", mode=SyncMode.INCREMENTAL, batch_size=1000)

    def dictionaries() -> list[tuple]:
        return target("SELECT column_name, dict_id FROM _fdm.compression_dictionaries ORDER BY column_name")

    sync(spec, keyring=KEYRING)
    first = dictionaries()
    assert [column for column, _ in first] == ["description", "metadata"]
    source.sql(f"UPDATE {source.table('TRANSACTIONS')} SET UPDATED_AT = '2024-03-01' WHERE TXN_ID < 300")
    assert sync(spec, keyring=KEYRING).mode == "incremental"
    assert dictionaries() == first  # the new frames use the stored dictionaries

    refreshed = sync(spec, keyring=KEYRING, full_refresh=True)
    after = dictionaries()
    assert [column for column, _ in after] == ["description", "metadata"]
    assert {dict_id for _, dict_id in after}.isdisjoint({dict_id for _, dict_id in first})
    assert refreshed.checks["dictionaries_dropped"] == 2
    rows = _read(scratch_database, limit=1000).rows
    assert [row["description"] for row in rows] == [
        f"card payment {i} at the corner shop" for i in range(600)
    ]


def test_rows_stay_readable_when_an_operator_adds_a_key_the_sync_did_not_use(
    source, make_spec, sync, target, scratch_database
):
    source.sql(f"CREATE TABLE {source.table('NOTES')} (NOTE_ID NUMBER(38,0), BODY VARCHAR)")
    source.sql(f"INSERT INTO {source.table('NOTES')} VALUES (1, 'first secret'), (2, 'second secret')")
    sync(
        make_spec("NOTES", encryption=EncryptionSpec(mode=EncryptionMode.COLUMNS, columns=("BODY",))),
        keyring=KEYRING,
    )
    target(
        "ALTER TABLE public.notes ADD PRIMARY KEY (note_id)"
    )  # ordering now follows it; the binding does not
    rows = _read(scratch_database, table="notes").rows
    assert [(int(row["note_id"]), row["body"]) for row in rows] == [(1, "first secret"), (2, "second secret")]


# --- the catalog belongs to the target table -------------------------------------------------------------------


def test_a_renamed_table_keeps_its_catalog_and_dictionaries_because_both_belong_to_the_target(
    source, make_spec, sync, target, scratch_database
):
    _transactions(source, rows=600)
    sync(_protected(make_spec, batch_size=1000), keyring=KEYRING)
    assert [name for (name,) in target("SELECT DISTINCT column_name FROM _fdm.compression_dictionaries")]

    # fdm's table is renamed; its target stays. Readers find the catalog and the dictionaries by the target.
    page = _read(scratch_database, table_name="ledger", table="transactions", limit=1000)
    assert "account_number_bidx" not in page.columns
    assert [row["account_number"] for row in page.rows] == [ACCOUNTS[i % 3] for i in range(600)]
    assert [row["description"] for row in page.rows] == [
        f"card payment {i} at the corner shop" for i in range(600)
    ]
    found = _read(
        scratch_database,
        table_name="ledger",
        table="transactions",
        filters={"account_number": ACCOUNTS[2]},
        limit=1000,
    )
    assert len(found.rows) == 200

    # The renamed table's next run finds the same catalog, and records its new name in it.
    sync(_protected(make_spec, name="ledger", batch_size=1000), keyring=KEYRING)
    assert set(target("SELECT table_name, target_table FROM _fdm.protected_columns")) == {
        ("ledger", "transactions")
    }
    page = _read(scratch_database, table_name="ledger", table="transactions", limit=1000)
    assert [row["description"] for row in page.rows][:2] == [
        "card payment 0 at the corner shop",
        "card payment 1 at the corner shop",
    ]


def test_blind_index_columns_stay_hidden_when_the_catalog_row_is_missing(
    source, make_spec, sync, target, scratch_database
):
    _transactions(source)
    sync(_protected(make_spec), keyring=KEYRING)
    target("DELETE FROM _fdm.protected_columns")
    page = _read(scratch_database, decrypt=False)
    assert "account_number_bidx" not in page.columns
    assert all("account_number_bidx" not in row for row in page.rows)
    with pytest.raises(reader.ReadError, match="no such column"):
        _read(scratch_database, decrypt=False, filters={"account_number_bidx": "00"})


OLD_CATALOG = (
    "CREATE TABLE _fdm.protected_columns (table_name text NOT NULL, target_schema text NOT NULL, "
    "target_table text NOT NULL, column_name text NOT NULL, source_column text NOT NULL, plain_type text NOT NULL, "
    "encrypted boolean NOT NULL, compressed boolean NOT NULL, blind_index_column text, blind_index_bits integer, "
    "row_key text[] NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (table_name, column_name))"
)
OLD_DICTIONARIES = (
    "CREATE TABLE _fdm.compression_dictionaries (dict_id bigint PRIMARY KEY, table_name text NOT NULL, "
    "column_name text NOT NULL, data bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
)


def test_an_older_catalog_is_keyed_by_target_in_place_by_concurrent_runs(target, scratch_database):
    target("CREATE SCHEMA _fdm")
    target(OLD_CATALOG)
    target(OLD_DICTIONARIES)
    row = "'{txn_id}', false, true, NULL, NULL"
    # `payments` was renamed `ledger` before this upgrade: both names have rows for public.payments.
    target(
        "INSERT INTO _fdm.protected_columns (table_name, target_schema, target_table, column_name, source_column, "
        f"plain_type, row_key, encrypted, compressed, blind_index_column, blind_index_bits, updated_at) VALUES "
        f"('payments', 'public', 'payments', 'memo', 'MEMO', 'text', {row}, now() - interval '1 day'), "
        f"('payments', 'public', 'payments', 'note', 'NOTE', 'text', {row}, now() - interval '1 day'), "
        f"('ledger', 'public', 'payments', 'memo', 'MEMO', 'text', {row}, now()), "
        f"('accounts', 'finance', 'accounts', 'memo', 'MEMO', 'text', {row}, now())"
    )
    target(
        "INSERT INTO _fdm.compression_dictionaries (dict_id, table_name, column_name, data) VALUES "
        "(40001, 'payments', 'memo', 'a'), (40002, 'ledger', 'memo', 'b'), (40003, 'accounts', 'memo', 'c'), "
        "(40004, 'never_published', 'memo', 'd')"
    )

    def bootstrap() -> None:
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            ensure_schemas(conn)

    with ThreadPoolExecutor(max_workers=3) as pool:
        for future in [pool.submit(bootstrap) for _ in range(3)]:
            future.result()
    bootstrap()  # and again: a no-op

    assert target(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = '_fdm.protected_columns'::regclass AND contype = 'p'"
    ) == [("PRIMARY KEY (target_schema, target_table, column_name)",)]
    assert target(
        "SELECT target_schema, target_table, column_name, table_name FROM _fdm.protected_columns ORDER BY 1, 2, 3"
    ) == [("finance", "accounts", "memo", "accounts"), ("public", "payments", "memo", "ledger")]
    assert target(
        "SELECT dict_id, target_schema, target_table FROM _fdm.compression_dictionaries ORDER BY dict_id"
    ) == [
        (40001, "public", "payments"),
        (40002, "public", "payments"),
        (40003, "finance", "accounts"),
        (40004, None, None),
    ]
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        stored = read_catalog(conn, "public", "payments")
        assert stored is not None and stored.table_name == "ledger"
        assert [column.target_name for column in stored.columns] == ["memo"]


# --- format version 2 ----------------------------------------------------------------------------------------


def store_as_version_1(  # noqa: PLR0913 - keyword-only test helper
    dsn: str, *, table: str, key: str, searchable: dict[str, str], keyring: Keyring, schema: str = "public"
) -> None:
    """Rewrite every encrypted value of a synced table as fdm wrote it before format version 2 (version 1
    envelopes, version 1 blind indexes), and its catalog as that fdm left it (blind index version 1)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        stored = read_catalog(conn, schema, table)
        assert stored is not None
        names = [column.target_name for column in stored.columns if column.encrypted]
        selected = ", ".join(f'"{name}"' for name in [key, *names])
        rows = conn.execute(f'SELECT {selected} FROM "{schema}"."{table}" ORDER BY 1').fetchall()
        keys = pa.array(row_keys_from_values([[row[0]] for row in rows]), pa.binary())
        updates: dict[str, list] = {}
        for position, name in enumerate(names, start=1):
            identity = ColumnIdentity(schema, table, name)
            values = [
                ColumnCipher(keyring, identity).decrypt_one(bytes(row[position]), keys[i].as_py())
                for i, row in enumerate(rows)
            ]
            assert not any(flags & FLAG_COMPRESSED for _, flags in values)
            plain = pa.array([value for value, _ in values], pa.binary())
            old = ColumnCipher(keyring, identity, version=1).encrypt(plain, row_keys=keys, compressed=False)
            updates[name] = old.to_pylist()
            if name in searchable:
                updates[searchable[name]] = (
                    BlindIndex(keyring, identity, version=1).compute(plain).to_pylist()
                )
        assignments = ", ".join(f'"{name}" = v."{name}"' for name in updates)
        columns = ", ".join(f'"{name}"' for name in updates)
        arrays = ", ".join("%s::bytea[]" for _ in updates)
        conn.execute(
            f'UPDATE "{schema}"."{table}" AS t SET {assignments} FROM unnest(%s::numeric[], {arrays}) '
            f'AS v(row_key, {columns}) WHERE t."{key}" = v.row_key',
            ([row[0] for row in rows], *updates.values()),
        )
        conn.execute(
            "UPDATE _fdm.protected_columns SET blind_index_version = 1 WHERE target_schema = %s AND target_table = %s",
            (schema, table),
        )
        conn.execute(
            f'VACUUM FULL "{schema}"."{table}"'
        )  # the rows back in the first pages, as a sync leaves them


def _versions(target, column: str) -> set[int]:
    return {
        version for (version,) in target(f"SELECT DISTINCT get_byte({column}, 0) FROM public.transactions")
    }


def test_rotation_moves_values_of_format_version_1_on_the_primary_key_to_version_2_and_searches_keep_working(
    source, make_spec, sync, target, scratch_database
):
    _transactions(source, rows=400)
    sync(_protected(make_spec, batch_size=1000), keyring=KEYRING)
    store_as_version_1(
        scratch_database,
        table="transactions",
        key="txn_id",
        searchable={"account_number": "account_number_bidx"},
        keyring=KEYRING,
    )
    assert _versions(target, "iban") == {1}
    expected = len([i for i in range(400) if i % 3 == 1])

    def search() -> list:
        return _read(scratch_database, filters={"account_number": ACCOUNTS[1]}, limit=1000).rows

    assert len(search()) == expected  # the catalog says version 1: lookups find version 1 index values

    # An incremental-style addition keeps the older version in the catalog while old rows remain.
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        before = rotation.table_usage(conn, "public", "transactions", primary="k1")
    assert before is not None and before.old_format == 1200 and before.on_primary == 0

    batches = 0

    def count(done: int, total: int) -> None:
        nonlocal batches
        batches += 1

    with psycopg.connect(scratch_database, autocommit=True) as conn:
        first = rotation.rotate_table(
            conn,
            table_name="transactions",
            schema="public",
            table="transactions",
            keyring=KEYRING,  # the values are on its primary key already
            pages_per_batch=1,
            on_batch=count,
            should_stop=lambda: batches >= 2,
        )
    assert first.usage is not None and 0 < first.usage.on_primary < first.usage.total
    assert _versions(target, "account_number") == {1, 2}
    assert target(
        "SELECT DISTINCT blind_index_version FROM _fdm.protected_columns WHERE blind_index_column IS NOT NULL"
    ) == [(1,)]
    assert len(search()) == expected  # half way: version 1 and 2 index values side by side
    page = _read(scratch_database, limit=1000)
    assert [row["iban"] for row in page.rows] == [IBANS[i % 3] for i in range(400)]

    with psycopg.connect(scratch_database, autocommit=True) as conn:
        second = rotation.rotate_table(
            conn, table_name="transactions", schema="public", table="transactions", keyring=KEYRING
        )
    assert second.usage is not None and second.usage.remaining == 0 and second.usage.old_format == 0
    assert first.values_rotated + second.values_rotated == 1200
    assert _versions(target, "account_number") == _versions(target, "iban") == {2}
    assert target(
        "SELECT DISTINCT blind_index_version FROM _fdm.protected_columns WHERE blind_index_column IS NOT NULL"
    ) == [(2,)]
    assert len(search()) == expected  # lookups now compute version 2 candidates only
    page = _read(scratch_database, limit=1000)
    assert [row["amount"] for row in page.rows] == [Decimal(f"{i}.25") for i in range(400)]


def test_an_incremental_run_keeps_the_catalogs_older_blind_index_version(
    source, make_spec, sync, target, scratch_database
):
    _transactions(source, rows=30)
    spec = _protected(make_spec, watermark_column="UPDATED_AT", mode=SyncMode.INCREMENTAL)
    sync(spec, keyring=KEYRING)
    store_as_version_1(
        scratch_database,
        table="transactions",
        key="txn_id",
        searchable={"account_number": "account_number_bidx"},
        keyring=KEYRING,
    )
    source.sql(
        f"INSERT INTO {source.table('TRANSACTIONS')} (TXN_ID, ACCOUNT_NUMBER, IBAN, AMOUNT, UPDATED_AT) VALUES (100, '{ACCOUNTS[1]}', '{IBANS[1]}', 1.00, '2024-06-01')"
    )
    assert sync(spec, keyring=KEYRING).mode == "incremental"
    assert target("SELECT get_byte(iban, 0) FROM public.transactions WHERE txn_id = 100") == [(2,)]
    assert target(
        "SELECT DISTINCT blind_index_version FROM _fdm.protected_columns WHERE blind_index_column IS NOT NULL"
    ) == [(1,)]
    found = _read(scratch_database, filters={"account_number": ACCOUNTS[1]}, limit=1000).rows
    assert sorted(int(row["txn_id"]) for row in found) == [*(i for i in range(30) if i % 3 == 1), 100]
    assert sync(spec, keyring=KEYRING, full_refresh=True).mode == "full"
    assert target(
        "SELECT DISTINCT blind_index_version FROM _fdm.protected_columns WHERE blind_index_column IS NOT NULL"
    ) == [(2,)]


def test_a_run_record_counts_encrypted_columns_by_what_they_store_not_their_plaintext(
    source, make_spec, sync
):
    """Bytes read are recorded for anyone to see: a one-row run must not tell an encrypted value's length."""
    spec = make_spec(
        "SECRETS",
        primary_key=("ID",),
        encryption=EncryptionSpec(mode=EncryptionMode.COLUMNS, columns=("SECRET",)),
    )
    recorded = []
    for secret in ("abc", "abcdefghi"):  # both pad to one 16-byte block
        source.sql(
            f"CREATE OR REPLACE TABLE {source.table('SECRETS')} (ID NUMBER(38,0) NOT NULL, SECRET VARCHAR)"
        )
        source.sql(f"INSERT INTO {source.table('SECRETS')} VALUES (1, '{secret}')")
        result = sync(spec, keyring=KEYRING, full_refresh=True)
        recorded.append(result.extract.bytes)
        assert set(result.checks["protection"]["secret"]) == {"encrypted", "bytes_stored"}

    assert recorded[0] == recorded[1]
