"""Checking a configuration against its Snowflake source (the emulator) before any run: the API's validate
endpoint, `import_tables --check-source` and the table page's "Check against source"."""

from __future__ import annotations

import pytest
import yaml
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from syncconfig.models import TableConfig
from tests.api.conftest import table_dict
from tests.engine.conftest import SOURCE_DATABASE, SOURCE_SCHEMA, unique_name

pytestmark = pytest.mark.django_db


def validate_url(name: str) -> str:
    return f"/api/v1/tables/{name}/validate/"


def source_table_dict(name: str, **overrides) -> dict:
    return table_dict(
        name,
        snowflake={"database": SOURCE_DATABASE, "schema": SOURCE_SCHEMA, "table": name.upper()},
        **overrides,
    )


@pytest.fixture
def orders(seed_source, snowflake_env) -> str:
    name = unique_name("orders")
    seed_source(name, rows=20)
    return name


@pytest.fixture
def keyless(snowflake) -> str:
    """A source table with no declared key, where one ID repeats."""
    name = unique_name("ledger")
    table = f"{SOURCE_DATABASE}.{SOURCE_SCHEMA}.{name.upper()}"
    snowflake.execute(f"CREATE TABLE {table} (ID NUMBER(38,0), AMOUNT NUMBER(18,2))")
    snowflake.execute(f"INSERT INTO {table} VALUES (1, 1.00), (2, 2.00), (2, 2.50), (3, 3.00)")  # noqa: S608
    return name


def test_a_stored_table_that_matches_its_source_is_valid_with_its_columns_planned(operator, orders):
    TableConfig.objects.create(
        name=orders,
        snowflake_database=SOURCE_DATABASE,
        snowflake_schema=SOURCE_SCHEMA,
        snowflake_table=orders.upper(),
        postgres_schema="public",
        postgres_table=orders,
        sync_mode="incremental",
        incremental_column="UPDATED_AT",
        encryption_mode="columns",
        encrypted_columns=["AMOUNT"],
    )

    response = operator.post(validate_url(orders))

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["valid"] is True, body["findings"]
    columns = {column["source_name"]: column for column in body["columns"]}
    assert columns["TXN_ID"]["roles"] == ["key"]  # the source's declared key
    assert columns["UPDATED_AT"]["roles"] == ["incremental"]
    assert columns["AMOUNT"] == {
        "source_name": "AMOUNT",
        "source_type": "NUMBER(18,2)",
        "target_name": "amount",
        "target_type": "bytea",
        "roles": ["encrypted"],
    }
    assert any(f["check"] == "key unique" and f["ok"] for f in body["findings"])


def test_a_misspelt_column_is_named_by_its_key_with_a_suggestion(operator, orders):
    candidate = source_table_dict(
        orders, encryption={"columns": ["AMOUNTT"]}, compression=False, primary_key=["TXN_ID"]
    )

    body = operator.post(validate_url(orders), candidate, format="json").json()

    assert body["valid"] is False
    problems = [f for f in body["findings"] if not f["ok"]]
    assert problems == [
        {
            "check": "columns",
            "ok": False,
            "path": "encryption.columns[0]",
            "message": f"'AMOUNTT' is not a column of "
            f'"{SOURCE_DATABASE}"."{SOURCE_SCHEMA}"."{orders.upper()}"; did you mean \'AMOUNT\'?',
        }
    ]
    assert not TableConfig.objects.filter(name=orders).exists()  # checked, never saved


def test_a_missing_source_table_is_a_finding_about_snowflake_table(operator, snowflake):
    name = unique_name("ghost")

    body = operator.post(validate_url(name), source_table_dict(name), format="json").json()

    assert body["valid"] is False
    assert [(f["check"], f["path"]) for f in body["findings"]] == [("source table", "snowflake.table")]


def test_a_key_that_repeats_in_the_source_is_shown_with_an_example(operator, keyless):
    candidate = source_table_dict(keyless, primary_key=["ID"], encryption=False, compression=False)

    body = operator.post(validate_url(keyless), candidate, format="json").json()

    (problem,) = [f for f in body["findings"] if not f["ok"]]
    assert problem["path"] == "primary_key"
    assert "ID=2 (2 rows)" in problem["message"]


def test_deletes_on_a_source_without_a_key_need_one(operator, keyless):
    candidate = source_table_dict(
        keyless, deletes={"mode": "hard"}, encryption=False, compression=False, primary_key=None
    )

    body = operator.post(validate_url(keyless), candidate, format="json").json()

    (problem,) = [f for f in body["findings"] if not f["ok"]]
    assert (problem["path"], problem["message"]) == (
        "primary_key",
        "deletes need a primary key: set primary_key (the source declares none)",
    )


def test_a_table_the_schema_refuses_is_400_and_an_unknown_one_without_a_body_404(operator, viewer):
    refused = operator.post(
        validate_url("orders"), table_dict("orders", sync_mode="sometimes"), format="json"
    )
    assert refused.status_code == 400
    assert "sync_mode" in refused.content.decode()
    assert operator.post(validate_url("no_such_table")).status_code == 404
    assert viewer.post(validate_url("no_such_table")).status_code == 403


def write_file(tmp_path, tables: list[dict]) -> str:
    path = tmp_path / "tables.yaml"
    path.write_text(yaml.safe_dump({"tables": tables}))
    return str(path)


def test_import_with_check_source_refuses_a_file_with_a_source_problem_and_changes_nothing(
    tmp_path, orders, capsys
):
    path = write_file(
        tmp_path,
        [source_table_dict(orders, primary_key=["TXN_IDD"], encryption=False, compression=False)],
    )

    with pytest.raises(CommandError, match="1 problem in"):
        call_command("import_tables", path, "--check-source")

    assert f"tables[0] {orders}.primary_key[0]: 'TXN_IDD' is not a column" in capsys.readouterr().err
    assert not TableConfig.objects.filter(name=orders).exists()


def test_import_with_check_source_imports_a_file_that_checks_out(tmp_path, orders):
    path = write_file(tmp_path, [source_table_dict(orders, encryption=False, compression=False)])

    call_command("import_tables", path, "--check-source")

    assert TableConfig.objects.filter(name=orders).exists()


def test_the_table_page_links_to_a_check_that_lists_findings_and_columns(client, orders):
    client.force_login(User.objects.create_superuser("checker", "c@example.com", "x"))
    table = TableConfig.objects.create(
        name=orders,
        snowflake_database=SOURCE_DATABASE,
        snowflake_schema=SOURCE_SCHEMA,
        snowflake_table=orders.upper(),
        postgres_schema="public",
        postgres_table=orders,
        exclude_columns=["CURRENCY"],
    )
    check_url = reverse("admin:syncconfig_tableconfig_check_source", args=[table.pk])

    page = client.get(reverse("admin:syncconfig_tableconfig_change", args=[table.pk])).content.decode()
    check = client.get(check_url).content.decode()

    assert check_url in page
    assert "checks out against" in check
    assert "not loaded" in check  # CURRENCY is excluded
    assert "numeric(18,2)" in check
