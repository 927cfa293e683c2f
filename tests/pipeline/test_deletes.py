"""Deletes: keys gone from the source are deleted (hard) or flagged (soft) in the publishing transaction, found
by a key-only scan; a run that would delete too much fails and changes nothing unless deletes are allowed."""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants

from __future__ import annotations

import datetime as dt

import pytest

from syncengine.pipeline.errors import ConfigurationError, DeleteGuardTripped
from syncengine.pipeline.protection.keyring import Keyring
from syncengine.pipeline.spec import DeleteMode, DeletesSpec, EncryptionMode, EncryptionSpec, SyncMode

from .conftest import staging_tables

T0 = dt.datetime(2024, 3, 1, 9, 0, 0)


def at(minutes: float) -> str:
    return (T0 + dt.timedelta(minutes=minutes)).isoformat(sep=" ")


def _accounts(source, rows: int) -> None:
    source.sql(
        f"CREATE TABLE {source.table('ACCOUNTS')} (ID NUMBER(38,0) NOT NULL, NAME TEXT, "
        "UPDATED_AT TIMESTAMP_NTZ NOT NULL, PRIMARY KEY (ID))"
    )
    for key in range(1, rows + 1):
        _put(source, key, f"name {key}", at(key))


def _put(source, key: int, name: str, updated_at: str) -> None:
    source.sql(
        f"INSERT INTO {source.table('ACCOUNTS')} VALUES (?, ?, CAST(? AS TIMESTAMP_NTZ))",
        (key, name, updated_at),
    )


def _delete(source, *keys: int) -> None:
    for key in keys:
        source.sql(f"DELETE FROM {source.table('ACCOUNTS')} WHERE ID = ?", (key,))


def _spec(make_spec, deletes_mode: DeleteMode, *, max_ratio: float = 0.5, **overrides):
    values = {"watermark_column": "updated_at", **overrides}
    return make_spec(
        "ACCOUNTS",
        primary_key=("ID",),
        deletes=DeletesSpec(mode=deletes_mode, max_ratio=max_ratio),
        **values,
    )


def test_hard_deletes_remove_rows_whose_key_left_the_source(source, make_spec, sync, target):
    _accounts(source, 10)
    spec = _spec(make_spec, DeleteMode.HARD)
    sync(spec)
    _delete(source, 2, 7)
    source.sql(
        f"UPDATE {source.table('ACCOUNTS')} SET NAME = 'renamed', UPDATED_AT = CAST(? AS TIMESTAMP_NTZ) WHERE ID = 3",
        (at(60),),
    )

    result = sync(spec)

    assert result.mode == "incremental"
    assert result.rows_deleted == 2
    assert result.rows_updated == 1
    assert result.checks["delete_scan"]["keys"] == 8
    scans = [query for query in result.evidence.queries if query["purpose"] == "delete scan"]
    assert [query["sql"] for query in scans] == [f'SELECT "ID" FROM "{source.database}"."PUBLIC"."ACCOUNTS"']
    assert result.checks["deletes"]["rows_missing_from_source"] == 2
    assert [key for (key,) in target("SELECT id FROM public.accounts ORDER BY id")] == [
        1,
        3,
        4,
        5,
        6,
        8,
        9,
        10,
    ]
    assert target("SELECT name FROM public.accounts WHERE id = 3") == [("renamed",)]
    assert staging_tables(target) == []


def test_soft_deletes_flag_rows_and_clear_the_flag_when_the_key_comes_back(source, make_spec, sync, target):
    _accounts(source, 10)
    spec = _spec(make_spec, DeleteMode.SOFT)
    sync(spec)
    _delete(source, 4)

    first = sync(spec)

    assert first.rows_deleted == 1
    flagged = target("SELECT id FROM public.accounts WHERE _fdm_deleted_at IS NOT NULL")
    assert flagged == [(4,)]
    assert target("SELECT count(*) FROM public.accounts") == [(10,)]  # the row stays, flagged

    # The key comes back with an old cursor value: the key scan sees it even though the extract does not.
    _put(source, 4, "name 4", at(4))
    second = sync(spec)

    assert second.rows_deleted == 0
    assert second.checks["rows_undeleted"] == 1
    assert target("SELECT count(*) FROM public.accounts WHERE _fdm_deleted_at IS NOT NULL") == [(0,)]


def test_a_second_run_does_not_flag_an_already_flagged_row_again(source, make_spec, sync, target):
    _accounts(source, 10)
    spec = _spec(make_spec, DeleteMode.SOFT)
    sync(spec)
    _delete(source, 4)
    sync(spec)
    flagged_at = target("SELECT _fdm_deleted_at FROM public.accounts WHERE id = 4")

    again = sync(spec)

    assert again.rows_deleted == 0
    assert target("SELECT _fdm_deleted_at FROM public.accounts WHERE id = 4") == flagged_at


def test_the_guard_trips_on_an_emptied_source_and_the_target_keeps_every_row(source, make_spec, sync, target):
    _accounts(source, 10)
    spec = _spec(make_spec, DeleteMode.HARD, max_ratio=0.1)
    sync(spec)
    watermark = target("SELECT watermark FROM _fdm.sync_state")
    source.sql(f"DELETE FROM {source.table('ACCOUNTS')}")

    with pytest.raises(DeleteGuardTripped) as tripped:
        sync(spec)

    assert "10 of 10 rows" in str(tripped.value)
    assert "max_ratio 0.1" in str(tripped.value)
    assert tripped.value.terminal
    assert target("SELECT count(*) FROM public.accounts") == [(10,)]
    assert target("SELECT watermark FROM _fdm.sync_state") == watermark
    assert staging_tables(target) == []


def test_allow_deletes_lets_one_run_past_the_guard(source, make_spec, sync, target):
    _accounts(source, 10)
    spec = _spec(make_spec, DeleteMode.HARD, max_ratio=0.1)
    sync(spec)
    _delete(source, 1, 2, 3)

    with pytest.raises(DeleteGuardTripped):
        sync(spec)
    result = sync(spec, allow_deletes=True)

    assert result.rows_deleted == 3
    assert result.checks["deletes"]["allowed"] is True
    assert target("SELECT count(*) FROM public.accounts") == [(7,)]


def test_the_guard_allows_deletes_up_to_the_ratio(source, make_spec, sync, target):
    _accounts(source, 10)
    spec = _spec(make_spec, DeleteMode.HARD, max_ratio=0.2)
    sync(spec)
    _delete(source, 5, 6)  # exactly 20%

    assert sync(spec).rows_deleted == 2


def test_a_full_load_with_hard_deletes_is_guarded_too(source, make_spec, sync, target):
    _accounts(source, 10)
    spec = _spec(make_spec, DeleteMode.HARD, max_ratio=0.1, mode=SyncMode.FULL, watermark_column=None)
    sync(spec)
    _delete(source, 1, 2, 3, 4)

    with pytest.raises(DeleteGuardTripped):
        sync(spec)
    assert target("SELECT count(*) FROM public.accounts") == [(10,)]
    assert sync(spec, allow_deletes=True).rows_deleted == 10  # a full load reports the rows it replaced
    assert target("SELECT count(*) FROM public.accounts") == [(6,)]


def test_a_full_load_with_soft_deletes_keeps_deleted_rows_flagged(source, make_spec, sync, target):
    _accounts(source, 10)
    spec = _spec(make_spec, DeleteMode.SOFT, mode=SyncMode.FULL, watermark_column=None)
    sync(spec)
    _delete(source, 9)

    result = sync(spec)

    assert result.mode == "full"
    assert result.rows_deleted == 1
    assert result.rows_updated == 0  # unchanged rows are left alone
    assert target("SELECT id FROM public.accounts WHERE _fdm_deleted_at IS NOT NULL") == [(9,)]
    assert target("SELECT count(*) FROM public.accounts") == [(10,)]


def test_deletes_without_a_primary_key_are_refused(source, make_spec, sync, target):
    source.sql(f"CREATE TABLE {source.table('LOG')} (MSG TEXT, UPDATED_AT TIMESTAMP_NTZ NOT NULL)")
    spec = make_spec("LOG", watermark_column="updated_at", deletes=DeletesSpec(mode=DeleteMode.HARD))

    with pytest.raises(ConfigurationError, match="primary key"):
        sync(spec)


def test_the_fdm_columns_are_not_drift(source, make_spec, sync, target):
    _accounts(source, 3)
    spec = _spec(make_spec, DeleteMode.SOFT, lineage=True)
    sync(spec)

    again = sync(spec)

    assert again.drift == []
    assert [
        name
        for (name,) in target(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'public.accounts'::regclass AND attnum > 0 "
            "AND attname LIKE '\\_fdm\\_%' ORDER BY attnum"
        )
    ] == ["_fdm_deleted_at", "_fdm_synced_at", "_fdm_run_id"]


def test_a_tripped_guard_flags_nothing_in_soft_mode(source, make_spec, sync, target):
    _accounts(source, 10)
    spec = _spec(make_spec, DeleteMode.SOFT, max_ratio=0.1)
    sync(spec)
    _delete(source, 1, 2, 3, 4, 5)

    with pytest.raises(DeleteGuardTripped, match="5 of 10 rows"):
        sync(spec)

    assert target("SELECT count(*) FROM public.accounts WHERE _fdm_deleted_at IS NOT NULL") == [(0,)]
    assert sync(spec, allow_deletes=True).rows_deleted == 5


def test_soft_deletes_on_a_full_load_with_encrypted_columns_are_refused(source, make_spec, sync, target):
    _accounts(source, 3)
    spec = _spec(
        make_spec,
        DeleteMode.SOFT,
        mode=SyncMode.FULL,
        watermark_column=None,
        encryption=EncryptionSpec(mode=EncryptionMode.COLUMNS, columns=("NAME",)),
    )

    with pytest.raises(ConfigurationError, match="encrypted"):
        sync(spec, keyring=Keyring.generate("test"))
    assert target("SELECT to_regclass('public.accounts')") == [(None,)]
