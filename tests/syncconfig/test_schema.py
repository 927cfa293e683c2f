"""The shared validation schema: what it accepts, and the exact message for each thing it refuses."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from syncconfig import choices
from syncconfig import schema as table_schema
from syncengine.pipeline import spec as pipeline
from tests.syncconfig.conftest import table


def messages(data: Any) -> list[str]:
    return [str(error) for error in table_schema.validate_document(data).errors]


def table_messages(**overrides: Any) -> list[str]:
    return messages({"tables": [table(**overrides)]})


def test_it_accepts_a_full_featured_table():
    parsed, errors = table_schema.validate_table(
        table(
            columns={"exclude": ["INTERNAL_NOTE"]},
            column_names={"TXN_ID": "transaction_id"},
            schema_drift="strict",
            batch_size=5000,
            max_staleness_minutes=90,
            enabled=False,
            notes="Ledger\ntransactions",
        )
    )
    assert errors == []
    assert parsed is not None and parsed.name == "transactions"


def test_defaults_fill_optional_keys():
    minimal = {
        "name": "fx_rates",
        "snowflake": {"database": "PROD_DB", "schema": "PUBLIC", "table": "FX_RATES"},
        "postgres": {"schema": "market", "table": "fx_rates"},
    }
    parsed, errors = table_schema.validate_table(minimal)
    assert errors == []
    fields = table_schema.model_fields_from_table(parsed)
    assert fields["sync_mode"] == "full"
    assert fields["schedule"] == "manual"
    assert fields["encryption_mode"] == "off"
    assert fields["compression_mode"] == "off"
    assert fields["schema_drift"] == "evolve"
    assert fields["batch_size"] == 100_000
    assert fields["max_staleness_minutes"] is None
    assert fields["enabled"] is True
    assert fields["primary_key"] == [] and fields["column_names"] == {}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"sync_modes": "full"},
            "tables[0] transactions.sync_modes: unknown key; did you mean 'sync_mode'?; allowed keys: name, snowflake, postgres, sync_mode, "
            "incremental_column, schedule, primary_key, columns, encryption, compression, column_names, clear_columns, "
            "schema_drift, batch_size, deletes, history, lineage, freshness_sla, max_staleness_minutes, reconcile, "
            "parallel, enabled, notes",
        ),
        (
            {"snowflake": {"database": "PROD_DB", "schema": "FINANCE", "table": "T", "warehouse": "WH"}},
            "tables[0] transactions.snowflake.warehouse: unknown key; allowed keys: database, schema, table",
        ),
        (
            {"encryption": {"columns": ["IBAN"], "key": "secret"}},
            "tables[0] transactions.encryption.key: unknown key; allowed keys: all, columns, searchable",
        ),
        (
            {"incremental_colum": "UPDATED_AT"},
            "tables[0] transactions.incremental_colum: unknown key; did you mean 'incremental_column'?; allowed "
            "keys: name, snowflake, postgres, sync_mode, incremental_column, schedule, primary_key, columns, "
            "encryption, compression, column_names, clear_columns, schema_drift, batch_size, deletes, history, "
            "lineage, freshness_sla, max_staleness_minutes, reconcile, parallel, enabled, notes",
        ),
        (
            {"sync_mode": "fulll"},
            "tables[0] transactions.sync_mode: must be one of: full, incremental; got string 'fulll'",
        ),
        (
            {"schema_drift": "loose"},
            "tables[0] transactions.schema_drift: must be one of: evolve, strict, ignore; got string 'loose'",
        ),
        (
            {"incremental_column": None},
            "tables[0] transactions.incremental_column: is required when sync_mode is incremental",
        ),
        (
            {"sync_mode": "full", "encryption": False, "compression": False},
            "tables[0] transactions.incremental_column: applies only when sync_mode is incremental; remove it or "
            "change sync_mode",
        ),
        (
            {"schedule": "61 * * * *"},
            "tables[0] transactions.schedule: invalid cron expression '61 * * * *': the minute field '61' is "
            "not valid; it takes 0-59",
        ),
        (
            {"schedule": "0 9 * * MONDAY"},
            "tables[0] transactions.schedule: invalid cron expression '0 9 * * MONDAY': the day-of-week field "
            "'MONDAY' is not valid; it takes 0-6 or SUN-SAT",
        ),
        (
            {"schedule": "every day"},
            "tables[0] transactions.schedule: must be hourly, daily, manual or a cron expression with 5 fields "
            "(minute hour day-of-month month day-of-week); got 'every day'",
        ),
        (
            {"schedule": "*/15 * * * * *"},
            "tables[0] transactions.schedule: must be hourly, daily, manual or a cron expression with 5 fields "
            "(minute hour day-of-month month day-of-week); got '*/15 * * * * *'",
        ),
        (
            {"schedule": "0 0 31 2 *"},
            "tables[0] transactions.schedule: cron expression '0 0 31 2 *' never fires",
        ),
        ({"enabled": "yes"}, "tables[0] transactions.enabled: must be true or false, got string 'yes'"),
        ({"batch_size": "1000"}, "tables[0] transactions.batch_size: must be an integer, got string '1000'"),
        ({"batch_size": 1000.0}, "tables[0] transactions.batch_size: must be an integer, got number 1000.0"),
        ({"batch_size": True}, "tables[0] transactions.batch_size: must be an integer, got boolean true"),
        ({"batch_size": 0}, "tables[0] transactions.batch_size: must be at least 1, got 0"),
        (
            {"batch_size": 2_000_000},
            "tables[0] transactions.batch_size: must be at most 1000000, got 2000000",
        ),
        (
            {"max_staleness_minutes": 0},
            "tables[0] transactions.max_staleness_minutes: must be at least 1, got 0",
        ),
        (
            {"snowflake": {"database": "PROD_DB", "schema": "FINANCE", "table": 1}},
            "tables[0] transactions.snowflake.table: must be a string, got integer 1",
        ),
        (
            {"primary_key": "TXN_ID"},
            "tables[0] transactions.primary_key: must be a list of strings, got string 'TXN_ID'",
        ),
        (
            {"primary_key": ["TXN_ID", 7]},
            "tables[0] transactions.primary_key[1]: must be a string, got integer 7",
        ),
        ({"notes": ["a"]}, "tables[0] transactions.notes: must be a string, got a list"),
        ({"notes": "a\x00b"}, "tables[0] transactions.notes: must not contain a NUL character"),
        (
            {"postgres": "finance.transactions"},
            "tables[0] transactions.postgres: must be a mapping, got string 'finance.transactions'",
        ),
        (
            {"encryption": "yes"},
            "tables[0] transactions.encryption: must be true, false or a mapping, got string 'yes'",
        ),
        (
            {"compression": 1},
            "tables[0] transactions.compression: must be true, false or a mapping, got integer 1",
        ),
        (
            {
                "columns": {"include": ["TXN_ID", "UPDATED_AT", "IBAN"], "exclude": ["INTERNAL_NOTE"]},
                "encryption": False,
                "compression": False,
            },
            "tables[0] transactions.columns: set include or exclude, not both",
        ),
        (
            {"columns": {"include": []}, "primary_key": []},
            "tables[0] transactions.columns.include: must name at least one column (omit columns to copy all)",
        ),
        (
            {"columns": {"exclude": ["txn_id"]}},
            "tables[0] transactions.primary_key[0]: 'TXN_ID' is excluded by columns.exclude",
        ),
        (
            {"encryption": {"columns": ["IBAN"], "searchable": ["ACCOUNT_NUMBER"]}},
            "tables[0] transactions.encryption.searchable[0]: 'ACCOUNT_NUMBER' is not encrypted; list it in "
            "encryption.columns too",
        ),
        (
            {"encryption": {"columns": ["IBAN", "txn_id"]}},
            "tables[0] transactions.encryption.columns[1]: 'txn_id' is part of the primary key, which cannot be "
            "encrypted",
        ),
        (
            {"encryption": {"columns": ["UPDATED_AT"]}},
            "tables[0] transactions.encryption.columns[0]: 'UPDATED_AT' is the incremental column, which cannot "
            "be encrypted",
        ),
        (
            {"encryption": {"all": True, "searchable": ["TXN_ID"]}},
            "tables[0] transactions.encryption.searchable[0]: 'TXN_ID' is part of the primary key, which cannot "
            "be encrypted, so it cannot be searchable",
        ),
        (
            {"encryption": {"all": True, "columns": ["IBAN"]}},
            "tables[0] transactions.encryption: set all or columns, not both",
        ),
        (
            {"encryption": {"searchable": ["IBAN"]}},
            "tables[0] transactions.encryption.columns: is required unless all is true",
        ),
        (
            {"encryption": {"columns": []}},
            "tables[0] transactions.encryption.columns: must name at least one column (use encryption: false to "
            "turn it off)",
        ),
        (
            {"compression": {"columns": ["TXN_ID"]}},
            "tables[0] transactions.compression.columns[0]: 'TXN_ID' is part of the primary key, which cannot be "
            "compressed",
        ),
        (
            {"primary_key": ["TXN_ID", "txn_id"]},
            "tables[0] transactions.primary_key[1]: 'txn_id' is listed more than once",
        ),
        (
            {"column_names": {"IBAN": "iban_hash", "ACCOUNT_NUMBER": "iban_hash"}},
            "tables[0] transactions.column_names.ACCOUNT_NUMBER: target name 'iban_hash' is also given to 'IBAN'",
        ),
        (
            {"column_names": {" IBAN": "iban"}},
            "tables[0] transactions.column_names[' IBAN']: key must not start or end with whitespace; got ' IBAN'",
        ),
        (
            {"snowflake": {"database": "PROD_DB", "schema": "", "table": "T"}},
            "tables[0] transactions.snowflake.schema: must not be empty",
        ),
        (
            {"snowflake": {"database": "PROD_DB", "schema": "FIN\nANCE", "table": "T"}},
            "tables[0] transactions.snowflake.schema: must not contain control characters",
        ),
        (
            {"postgres": {"schema": "finance", "table": "t" * 64}},
            "tables[0] transactions.postgres.table: is longer than PostgreSQL's limit of 63 bytes",
        ),
        (
            {"postgres": {"schema": "pg_catalog", "table": "transactions"}},
            "tables[0] transactions.postgres.schema: 'pg_catalog' is reserved by PostgreSQL",
        ),
        (
            {"postgres": {"schema": "_fdm_staging", "table": "transactions"}},
            "tables[0] transactions.postgres.schema: '_fdm_staging' is reserved for fdm's sync state and staging tables",
        ),
        (
            {"postgres": {"schema": "public", "table": "auth_user"}},
            "tables[0] transactions.postgres.table: public.auth_user is one of fdm's own tables",
        ),
    ],
)
def test_it_rejects_with_an_exact_message(overrides: dict[str, Any], expected: str):
    assert table_messages(**overrides) == [expected]


def test_a_missing_required_key_is_named():
    assert messages({"tables": [{"name": "fx_rates"}]}) == [
        "tables[0] fx_rates.snowflake: is required",
        "tables[0] fx_rates.postgres: is required",
    ]


@pytest.mark.parametrize("name", ["Market_Data", "market-data", "1fx", "_fx", "fx rates"])
def test_a_table_name_must_be_slug_like(name: str):
    assert table_messages(name=name) == [
        "tables[0].name: must start with a lower-case letter and contain only lower-case letters, digits and _; "
        f"got {name!r}"
    ]


def test_duplicate_table_names_are_rejected():
    document = {"tables": [table("fx_rates"), table("fx_rates", postgres={"schema": "other", "table": "fx"})]}
    assert messages(document) == ["tables[1] fx_rates.name: 'fx_rates' is already used by tables[0]"]


def test_duplicate_targets_are_rejected():
    target = {"schema": "finance", "table": "shared"}
    document = {"tables": [table("a", postgres=target), table("b", postgres=target)]}
    assert messages(document) == ["tables[1] b.postgres: finance.shared is already the target of tables[0] a"]


def test_every_problem_in_a_document_is_reported():
    document = {
        "tables": [table("ok"), table("bad_mode", sync_mode="sometimes"), "nonsense", table("x", enabled=1)]
    }
    assert messages(document) == [
        "tables[1] bad_mode.sync_mode: must be one of: full, incremental; got string 'sometimes'",
        "tables[2]: must be a mapping, got string 'nonsense'",
        "tables[3] x.enabled: must be true or false, got integer 1",
    ]
    assert table_schema.validate_document(document).tables == []


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (None, ["the document must be a mapping with a 'tables' list, got null"]),
        ([table()], ["the document must be a mapping with a 'tables' list, got a list"]),
        ({}, ["tables: is required"]),
        ({"tables": {"name": "x"}}, ["tables: must be a list of tables, got a mapping"]),
        ({"tables": [], "version": 2}, ["version: unknown top-level key; allowed keys: tables"]),
    ],
)
def test_the_document_shape_is_checked(document: Any, expected: list[str]):
    assert messages(document) == expected


def test_an_empty_table_list_is_valid():
    assert table_schema.validate_document({"tables": []}) == ([], [])


@pytest.mark.parametrize(
    "schedule", ["hourly", "daily", "manual", "0 6 * * 1-5", "*/15 6-22 * * MON-FRI", "@weekly"]
)
def test_schedules_accept_keywords_and_cron(schedule: str):
    assert table_schema.schedule_problem(schedule) is None


def test_encryption_true_means_all_columns_and_round_trips_as_true():
    parsed, _ = table_schema.validate_table(table(encryption=True, compression=True))
    fields = table_schema.model_fields_from_table(parsed)
    assert (fields["encryption_mode"], fields["compression_mode"]) == ("all", "auto")
    exported = table_schema.table_to_dict(parsed)
    assert exported["encryption"] is True and exported["compression"] is True


def test_all_with_searchable_is_kept_as_a_mapping():
    parsed, errors = table_schema.validate_table(table(encryption={"all": True, "searchable": ["IBAN"]}))
    assert errors == []
    assert table_schema.table_to_dict(parsed)["encryption"] == {"all": True, "searchable": ["IBAN"]}


def test_changes_between_table_dicts_are_listed_key_by_key():
    old = table_schema.table_to_dict(table_schema.validate_table(table()).table)
    new = table_schema.table_to_dict(
        table_schema.validate_table(table(schedule="daily", batch_size=5000)).table
    )
    new["snowflake"]["database"] = "DEV_DB"
    assert table_schema.table_dict_changes(old, new) == {
        "snowflake.database": ("PROD_DB", "DEV_DB"),
        "schedule": ("hourly", "daily"),
        "batch_size": (100_000, 5000),
    }


def test_a_choice_set_that_differs_from_its_pipeline_enum_refuses_to_load():
    from django.core.exceptions import ImproperlyConfigured
    from django.db import models

    with pytest.raises(ImproperlyConfigured, match="the pipeline's SyncMode"):

        @choices.mirrors(pipeline.SyncMode)
        class Partial(models.TextChoices):
            FULL = pipeline.SyncMode.FULL.value, "Full"


def test_the_schemas_value_types_match_the_choices():
    from syncconfig.schema.document import DriftPolicyValue, SyncModeValue

    assert sorted(get_args(SyncModeValue)) == sorted(choices.SyncMode.values)
    assert sorted(get_args(DriftPolicyValue)) == sorted(choices.DriftPolicy.values)


def test_the_reserved_schemas_are_the_pipelines_own():
    from syncconfig.schema.document import FDM_SCHEMAS
    from syncengine.pipeline.load import STAGING_SCHEMA
    from syncengine.pipeline.watermark import STATE_SCHEMA

    assert set(FDM_SCHEMAS) == {STATE_SCHEMA, STAGING_SCHEMA}


@pytest.mark.parametrize("word", ["Daily", "HOURLY", "Manual"])
def test_schedule_words_are_read_whatever_their_case(word):
    parsed, errors = table_schema.validate_table(table(schedule=word, reconcile={"schedule": "Daily"}))
    assert errors == []
    fields = table_schema.model_fields_from_table(parsed)
    assert (fields["schedule"], fields["reconcile_schedule"]) == (word.lower(), "daily")
