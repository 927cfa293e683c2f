"""The data endpoint on a table synced in-process: pages, cursors, filters, masking and decryption by role, the
audit record, and clear 400s for bad input."""

from __future__ import annotations

import pytest

from syncengine import services
from syncengine.choices import RunStatus, RunTrigger
from syncengine.models import DecryptedRead
from syncengine.pipeline.protection.keyring import Keyring
from tests.api.conftest import error_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def synced(make_table, seed_source, monkeypatch):
    """A table of 30 payments, AMOUNT encrypted, CURRENCY encrypted and searchable, synced."""
    monkeypatch.setenv("FDM_ENCRYPTION_KEYS", Keyring.generate("api").format())
    table = make_table(
        primary_key=["TXN_ID"],
        encryption_mode="columns",
        encrypted_columns=["AMOUNT", "CURRENCY"],
        searchable_columns=["CURRENCY"],
    )
    seed_source(table.snowflake_table, rows=30)
    run = services.run_execute(run_id=services.run_create(table=table, trigger=RunTrigger.COMMAND).pk)
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    return table


def test_admins_read_decrypted_and_every_read_is_audited(synced, admin):
    response = admin.get(f"/api/v1/data/{synced.name}/", {"page_size": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["results"] == [
        {"txn_id": "1", "amount": "1.25", "currency": "EUR", "updated_at": "2026-01-01T00:01:00"},
        {"txn_id": "2", "amount": "2.25", "currency": "EUR", "updated_at": "2026-01-01T00:02:00"},
    ]
    assert body["columns"] == ["txn_id", "amount", "currency", "updated_at"]
    assert "cursor=" in body["next"]
    audit = DecryptedRead.objects.get()
    assert (audit.table_name, audit.columns, audit.row_count, audit.via) == (
        synced.name,
        ["amount", "currency"],
        2,
        "api",
    )


def test_masked_on_request_is_not_audited(synced, admin):
    body = admin.get(f"/api/v1/data/{synced.name}/", {"masked": "true", "page_size": 1}).json()
    assert body["results"][0]["amount"] == "[encrypted]"
    assert not DecryptedRead.objects.exists()


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_viewers_and_operators_see_encrypted_columns_masked(synced, client_for, role):
    body = client_for(role).get(f"/api/v1/data/{synced.name}/", {"txn_id": "7"}).json()
    assert body["results"] == [
        {
            "txn_id": "7",
            "amount": "[encrypted]",
            "currency": "[encrypted]",
            "updated_at": "2026-01-01T00:07:00",
        }
    ]
    assert body["masked_columns"] == ["amount", "currency"] and body["next"] is None
    assert not DecryptedRead.objects.exists()


def test_cursors_walk_every_row_once(synced, viewer):
    seen = []
    url = f"/api/v1/data/{synced.name}/?page_size=7"
    while url:
        body = viewer.get(url).json()
        seen.extend(row["txn_id"] for row in body["results"])
        url = body["next"]
    assert seen == [str(i) for i in range(1, 31)]


def test_a_searchable_encrypted_column_filters_through_its_blind_index(synced, admin, viewer):
    body = admin.get(f"/api/v1/data/{synced.name}/", {"currency": "EUR", "page_size": 100}).json()
    assert len(body["results"]) == 30
    assert admin.get(f"/api/v1/data/{synced.name}/", {"currency": "USD"}).json()["results"] == []
    refused = viewer.get(f"/api/v1/data/{synced.name}/", {"currency": "EUR"})
    assert refused.status_code == 403 and "read_decrypted" in error_of(refused)["message"]


@pytest.mark.parametrize(
    ("query", "code", "field"),
    [
        ({"nope": "1"}, "invalid_filter", ""),
        ({"amount": "1.25"}, "invalid_filter", "amount"),
        ({"txn_id": "not-a-number"}, "invalid_filter", ""),
        ({"cursor": "%%%"}, "invalid_cursor", "cursor"),
        ({"cursor": "WyJ4Il0"}, "invalid_filter", ""),  # ["x"]: a cursor that does not fit the key's type
        ({"page_size": "0"}, "validation_error", "page_size"),
        ({"masked": "maybe"}, "validation_error", "masked"),
    ],
)
def test_bad_input_is_a_400_that_says_what_is_wrong(synced, admin, query, code, field):
    response = admin.get(f"/api/v1/data/{synced.name}/", query)
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["code"] == code
    if field:
        assert error["details"][0]["field"] == field


def test_unknown_and_unsynced_tables_are_404(make_table, viewer):
    assert error_of(viewer.get("/api/v1/data/no_such_table/"))["code"] == "not_found"
    table = make_table()
    response = viewer.get(f"/api/v1/data/{table.name}/")
    assert response.status_code == 404 and error_of(response)["code"] == "not_synced"
