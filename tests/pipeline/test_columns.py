"""Column selection and naming follow Snowflake's identifier rules; configuration that cannot be honoured
(a misspelt column, encryption without a keyring) stops the run before anything is loaded."""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants

from __future__ import annotations

import pytest

from syncengine.pipeline.errors import ConfigurationError, SourceSchemaError
from syncengine.pipeline.spec import EncryptionMode, EncryptionSpec


@pytest.fixture
def accounts(source):
    source.sql(
        f"CREATE TABLE {source.table('ACCOUNTS')} (ACCOUNT_ID NUMBER(38,0) NOT NULL, IBAN VARCHAR, "
        '"Holder Name" VARCHAR, "lower_case" VARCHAR, INTERNAL_NOTE VARCHAR, UPDATED_AT TIMESTAMP_NTZ, '
        "PRIMARY KEY (ACCOUNT_ID))"
    )
    source.sql(
        f"INSERT INTO {source.table('ACCOUNTS')} VALUES "
        "(1, 'DE89370400440532013000', 'Ada Lovelace', 'x', 'secret', '2024-01-01 00:00:00')"
    )


def _columns(target, table: str) -> list[str]:
    return [
        name
        for (name,) in target(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 ORDER BY attnum",
            (f"public.{table}",),
        )
    ]


def test_upper_case_plain_names_become_lower_case_and_others_are_kept(accounts, make_spec, sync, target):
    sync(make_spec("accounts"))
    assert _columns(target, "accounts") == [
        "account_id",
        "iban",
        "Holder Name",
        "lower_case",
        "internal_note",
        "updated_at",
    ]
    assert target('SELECT "Holder Name" FROM public.accounts') == [("Ada Lovelace",)]


def test_exclude_and_rename_resolve_names_like_snowflake(accounts, make_spec, sync, target):
    spec = make_spec(
        "ACCOUNTS",
        exclude_columns=("internal_note", '"lower_case"'.strip('"')),
        column_names={"Holder Name": "holder", "iban": "iban_code"},
    )
    sync(spec)
    assert _columns(target, "accounts") == ["account_id", "iban_code", "holder", "updated_at"]


def test_include_loads_only_the_named_columns(accounts, make_spec, sync, target):
    sync(make_spec("ACCOUNTS", include_columns=("Account_Id", "IBAN")))
    assert _columns(target, "accounts") == ["account_id", "iban"]


def test_a_mixed_case_name_is_matched_exactly(accounts, make_spec, sync):
    with pytest.raises(SourceSchemaError, match="'holder name'"):
        sync(make_spec("ACCOUNTS", exclude_columns=("holder name",)))


def test_a_misspelt_excluded_column_stops_the_run_instead_of_loading_it(accounts, make_spec, sync, target):
    with pytest.raises(SourceSchemaError, match="INTERNAL_NTOE"):
        sync(make_spec("ACCOUNTS", exclude_columns=("INTERNAL_NTOE",)))
    assert target("SELECT to_regclass('public.accounts')") == [(None,)]


def test_the_primary_key_must_be_loaded(accounts, make_spec, sync):
    with pytest.raises(ConfigurationError, match="primary key"):
        sync(make_spec("ACCOUNTS", exclude_columns=("ACCOUNT_ID",)))


def test_incremental_tables_need_an_orderable_incremental_column(accounts, make_spec, sync):
    from syncengine.pipeline.spec import SyncMode

    with pytest.raises(ConfigurationError, match="incremental column"):
        sync(make_spec("ACCOUNTS", mode=SyncMode.INCREMENTAL))


def test_two_columns_mapping_to_one_target_name_are_refused(accounts, make_spec, sync):
    with pytest.raises(ConfigurationError, match="would both be loaded as 'account_id'"):
        sync(make_spec("ACCOUNTS", column_names={"IBAN": "account_id"}))


@pytest.mark.parametrize(
    "protection",
    [
        {"encryption": EncryptionSpec(mode=EncryptionMode.COLUMNS, columns=("IBAN",))},
        {"encryption": EncryptionSpec(mode=EncryptionMode.ALL)},
    ],
    ids=["encrypted columns", "encryption true"],
)
def test_encryption_without_a_keyring_is_refused_before_anything_is_written(
    accounts, make_spec, sync, target, protection
):
    with pytest.raises(ConfigurationError, match="no keyring is set") as raised:
        sync(make_spec("ACCOUNTS", **protection))
    assert raised.value.terminal and raised.value.table == "accounts"
    assert target("SELECT to_regclass('public.accounts')") == [(None,)]
