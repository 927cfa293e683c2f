"""Protection no role below admin can bypass: every channel (API, YAML import, admin form) refuses a change
that weakens the encryption of sensitive columns unless the caller holds the admin role, and no table may read
a column that another table encrypts in clear without an exception an admin recorded."""

from __future__ import annotations

import pytest

from syncconfig import services, yaml_io
from syncconfig.models import TableConfig
from tests.api.conftest import error_of, table_dict

pytestmark = pytest.mark.django_db

LEDGER_SOURCE = {"database": "PROD_DB", "schema": "FINANCE", "table": "LEDGER"}


def encrypting_table(name: str = "ledger", **overrides):
    return table_dict(
        name,
        snowflake=LEDGER_SOURCE,
        primary_key=["TXN_ID"],
        encryption={"columns": ["IBAN", "ACCOUNT_NUMBER"], "searchable": ["IBAN"]},
        **overrides,
    )


@pytest.fixture
def ledger(db) -> TableConfig:
    services.tables_import(document={"tables": [encrypting_table()]})  # a command on the server: trusted
    return TableConfig.objects.get(name="ledger")


def test_an_operator_cannot_copy_an_encrypted_source_into_a_clear_table(operator, ledger):
    copy = table_dict("ledger_copy", snowflake=LEDGER_SOURCE, primary_key=["TXN_ID"])
    response = operator.post("/api/v1/tables/", copy, format="json")
    assert response.status_code == 400
    messages = [detail["message"] for detail in error_of(response)["details"]]
    assert any("'IBAN' is encrypted by table 'ledger'" in m for m in messages), messages
    assert any("'ACCOUNT_NUMBER' is encrypted by table 'ledger'" in m for m in messages), messages
    assert not TableConfig.objects.filter(name="ledger_copy").exists()


def test_a_copy_that_encrypts_the_same_columns_is_accepted_for_an_operator(operator, ledger):
    copy = encrypting_table("ledger_copy", postgres={"schema": "public", "table": "ledger_copy"})
    assert operator.post("/api/v1/tables/", copy, format="json").status_code == 201
    # A copy that leaves the encrypted columns out reads nothing protected.
    narrow = table_dict(
        "ledger_ids", snowflake=LEDGER_SOURCE, columns={"exclude": ["iban", "account_number"]}
    )
    assert operator.post("/api/v1/tables/", narrow, format="json").status_code == 201


@pytest.mark.parametrize(
    "patch",
    [
        {"encryption": False},
        {"encryption": {"columns": ["ACCOUNT_NUMBER"], "searchable": None}},  # IBAN out of encryption
        {"encryption": {"searchable": None}},  # IBAN out of searchable
        {"name": "ledger_renamed"},
        {"postgres": {"table": "ledger_elsewhere"}},
    ],
)
def test_an_operator_cannot_weaken_an_encrypting_table(operator, ledger, patch):
    before = ledger.to_table_dict()
    response = operator.patch("/api/v1/tables/ledger/", patch, format="json")
    assert response.status_code == 403, response.json()
    error = error_of(response)
    assert error["code"] == "permission_denied"
    assert all("needs the admin role" in detail["message"] for detail in error["details"])
    assert TableConfig.objects.get(pk=ledger.pk).to_table_dict() == before


def test_an_operator_may_strengthen_or_leave_protection_alone(operator, ledger):
    assert operator.patch("/api/v1/tables/ledger/", {"schedule": "daily"}, format="json").status_code == 200
    stronger = {"encryption": {"columns": ["IBAN", "ACCOUNT_NUMBER", "NAME"], "searchable": ["IBAN"]}}
    assert operator.patch("/api/v1/tables/ledger/", stronger, format="json").status_code == 200


def test_an_operator_cannot_delete_or_prune_an_encrypting_table(operator, ledger):
    assert operator.delete("/api/v1/tables/ledger/").status_code == 403
    response = operator.post(
        "/api/v1/tables/yaml-import/?prune=true", "tables: []\n", content_type="application/yaml"
    )
    assert response.status_code == 400
    assert "needs the admin role" in str(response.json())
    assert TableConfig.objects.filter(name="ledger").exists()


def test_an_operator_cannot_turn_encryption_off_through_an_import(operator, ledger):
    document = yaml_io.dump_tables([{**encrypting_table(), "encryption": False}])
    response = operator.post("/api/v1/tables/yaml-import/", document, content_type="application/yaml")
    assert response.status_code == 400, response.json()
    assert "turning encryption off weakens the protection" in str(response.json())
    assert TableConfig.objects.get(name="ledger").encryption_mode == "columns"


def test_an_admin_may_weaken_protection_and_the_change_is_audited(admin, ledger):
    assert admin.patch("/api/v1/tables/ledger/", {"encryption": False}, format="json").status_code == 200
    latest = TableConfig.objects.get(name="ledger").history.latest()
    assert latest.encryption_mode == "off" and latest.history_user is not None


def test_only_an_admin_may_record_an_exception_to_the_policy(operator, admin, ledger):
    copy = table_dict(
        "bank_file",
        snowflake=LEDGER_SOURCE,
        columns={"include": ["TXN_ID", "IBAN"]},
        clear_columns={"IBAN": "the bank's payment file needs the IBAN in clear"},
    )
    refused = operator.post("/api/v1/tables/", copy, format="json")
    assert refused.status_code == 403
    assert error_of(refused)["details"][0]["field"] == "clear_columns"
    created = admin.post("/api/v1/tables/", copy, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["clear_columns"] == {"IBAN": "the bank's payment file needs the IBAN in clear"}
    # The exception is the admin's: an operator may edit the rest of the table, not the exception.
    assert (
        operator.patch("/api/v1/tables/bank_file/", {"schedule": "daily"}, format="json").status_code == 200
    )
    changed = {"clear_columns": {"IBAN": "a different reason entirely"}}
    assert operator.patch("/api/v1/tables/bank_file/", changed, format="json").status_code == 403


def test_an_exception_needs_a_reason(admin, ledger):
    copy = table_dict("bank_file", snowflake=LEDGER_SOURCE, clear_columns={"IBAN": "ok"})
    response = admin.post("/api/v1/tables/", copy, format="json")
    assert response.status_code == 400
    assert error_of(response)["details"][0]["field"] == "clear_columns.IBAN"


def test_a_source_encrypted_in_full_needs_full_encryption_everywhere(operator, db):
    services.tables_import(
        document={
            "tables": [table_dict("vault", snowflake=LEDGER_SOURCE, primary_key=["TXN_ID"], encryption=True)]
        }
    )
    listed = table_dict("vault_copy", snowflake=LEDGER_SOURCE, encryption={"columns": ["IBAN"]})
    response = operator.post("/api/v1/tables/", listed, format="json")
    assert response.status_code == 400
    assert "encrypts every column of this source" in str(response.json())
    # The key stays in clear in both tables; a copy keyed on an encrypted column is refused.
    full = table_dict("vault_copy", snowflake=LEDGER_SOURCE, primary_key=["TXN_ID"], encryption=True)
    assert operator.post("/api/v1/tables/", full, format="json").status_code == 201
    keyed = table_dict("by_iban", snowflake=LEDGER_SOURCE, primary_key=["IBAN"], encryption=True)
    response = operator.post("/api/v1/tables/", keyed, format="json")
    assert response.status_code == 400
    assert "'IBAN' is encrypted by table 'vault'" in str(response.json())
