"""The deep check finds exactly the rows and columns that differ between Snowflake and the PostgreSQL copy, and
nothing when they agree, for every type the sync carries."""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from syncengine.pipeline.reconcile.deep import DeepOptions, deep_reconcile
from syncengine.pipeline.reconcile.result import CHANGED, MISSING_IN_SOURCE, MISSING_IN_TARGET
from syncengine.pipeline.spec import CompressionMode, CompressionSpec, EncryptionMode, EncryptionSpec
from tests.pipeline.test_protection import KEYRING
from tests.pipeline.test_types import _create as _create_all_types

# Small segments, so that a table of a few dozen rows is bisected through several levels.
SMALL = DeepOptions(segments=4, fanout=2, leaf_rows=2)


def _quiet(*_args, **_fields) -> None:
    return None


@pytest.fixture
def reconcile(settings, scratch_database) -> Iterator:
    def run(spec, **kwargs):
        source_conn = settings.connect()
        try:
            with psycopg.connect(scratch_database, autocommit=True) as target_conn:
                return deep_reconcile(
                    spec, source_conn=source_conn, target_conn=target_conn, log=_quiet, **kwargs
                )
        finally:
            source_conn.close()

    yield run


def _accounts(source, rows: int = 40) -> None:
    source.sql(
        f"CREATE TABLE {source.table('ACCOUNTS')} (ID NUMBER(38,0) NOT NULL, NAME VARCHAR, "
        "BALANCE NUMBER(12,2), OPENED TIMESTAMP_NTZ, PRIMARY KEY (ID))"
    )
    source.sql(
        f"INSERT INTO {source.table('ACCOUNTS')} SELECT SEQ4() + 1, 'name ' || (SEQ4() + 1), "
        "(SEQ4() + 1) * 1.25, '2024-01-01 00:00:00'::TIMESTAMP_NTZ FROM TABLE(GENERATOR(ROWCOUNT => ?))",
        (rows,),
    )


def test_it_finds_nothing_when_the_copy_is_equal(source, make_spec, sync, reconcile):
    _accounts(source)
    spec = make_spec("ACCOUNTS")
    sync(spec)

    result = reconcile(spec, options=SMALL)

    assert result.equal
    assert (result.rows_source, result.rows_target) == (40, 40)
    assert result.segments_checked == 4
    # Real Snowflake reads the source as of the check's first statement; the emulator has no time travel,
    # and the result says that the source was read at each query instead.
    assert result.source_as_of["at"] == "each query"
    assert "syntax error" in result.source_as_of["time_travel"]


def test_it_finds_deleted_updated_reinserted_and_tampered_rows(source, make_spec, sync, reconcile, target):
    _accounts(source)
    spec = make_spec("ACCOUNTS")
    sync(spec)
    accounts = source.table("ACCOUNTS")
    source.sql(f"DELETE FROM {accounts} WHERE ID = 3")
    source.sql(f"UPDATE {accounts} SET NAME = 'renamed' WHERE ID = 17")
    source.sql(f"DELETE FROM {accounts} WHERE ID = 25")
    source.sql(f"INSERT INTO {accounts} VALUES (25, 'name 25', 99.99, '2024-01-01 00:00:00')")
    source.sql(f"INSERT INTO {accounts} VALUES (41, 'new', 1.00, '2024-01-02 00:00:00')")
    target("UPDATE public.accounts SET opened = opened + interval '1 microsecond' WHERE id = 33")

    result = reconcile(spec, options=SMALL)

    found = {(difference.key, difference.kind, difference.columns) for difference in result.differences}
    assert found == {
        (("3",), MISSING_IN_SOURCE, ()),
        (("17",), CHANGED, ("name",)),
        (("25",), CHANGED, ("balance",)),
        (("33",), CHANGED, ("opened",)),
        (("41",), MISSING_IN_TARGET, ()),
    }
    assert result.differences_found == 5

    sync(spec, full_refresh=True)
    assert reconcile(spec, options=SMALL).equal


def test_every_type_compares_equal_after_a_sync(source, make_spec, sync, reconcile):
    _create_all_types(source)
    spec = make_spec("ALL_TYPES")
    assert sync(spec).checks["reconciliation"]["status"] == "equal"

    result = reconcile(spec, options=SMALL)

    assert result.differences == [] and result.equal
    assert result.rows_source == result.rows_target == 7
    assert set(result.compared_in_memory) == {"doc", "obj", "arr"}


def test_encrypted_and_compressed_columns_compare_equal_and_their_changes_are_found(
    source, make_spec, sync, reconcile, target
):
    _create_all_types(source)
    spec = make_spec(
        "ALL_TYPES",
        encryption=EncryptionSpec(mode=EncryptionMode.ALL),
        compression=CompressionSpec(
            mode=CompressionMode.COLUMNS, columns=("DOC", "OBJ", "ARR", "BLOB", "NOTE")
        ),
    )
    sync(spec, keyring=KEYRING)

    assert reconcile(spec, keyring=KEYRING, options=SMALL).equal

    source.sql(f"UPDATE {source.table('ALL_TYPES')} SET AMOUNT = 1.00, NOTE = 'changed' WHERE ID = 2")
    # Another row's ciphertext copied over row 3 (it no longer verifies under row 3's key), and row 1's rate
    # cleared behind fdm's back.
    target("UPDATE public.all_types SET rate = (SELECT rate FROM public.all_types WHERE id = 1) WHERE id = 3")
    target("UPDATE public.all_types SET rate = NULL WHERE id = 1")

    result = reconcile(spec, keyring=KEYRING, options=SMALL)

    found = {(difference.key, difference.kind, difference.columns) for difference in result.differences}
    assert found == {
        (("1",), CHANGED, ("rate",)),
        (("2",), CHANGED, ("amount", "note")),
        (("3",), CHANGED, ("rate",)),
    }
