"""The data endpoint on a table synced in-process: pages, cursors, filters, masking and decryption by role, the
audit record, and clear 400s for bad input."""

from __future__ import annotations

import pytest

from syncengine import services
from syncengine.api.data import encode_cursor
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


def search(client, table, **body):
    return client.post(f"/api/v1/data/{table.name}/search/", body, format="json")


def test_a_searchable_encrypted_column_filters_through_its_blind_index_in_a_post_body(synced, admin, viewer):
    body = search(admin, synced, filters={"currency": "EUR"}, page_size=100).json()
    assert len(body["results"]) == 30
    assert search(admin, synced, filters={"currency": "USD"}).json()["results"] == []
    refused = search(viewer, synced, filters={"currency": "EUR"})
    assert refused.status_code == 403 and "read_decrypted" in error_of(refused)["message"]


def test_an_encrypted_filter_in_a_url_is_refused_so_that_no_log_keeps_the_value(synced, admin):
    response = admin.get(f"/api/v1/data/{synced.name}/", {"currency": "EUR"})
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "encrypted_filter_in_url" and error["details"][0]["field"] == "currency"
    assert not DecryptedRead.objects.exists()


def test_a_masked_search_on_an_encrypted_column_is_audited(synced, admin):
    body = search(admin, synced, filters={"currency": "EUR"}, masked=True, page_size=3).json()
    assert [row["currency"] for row in body["results"]] == ["[encrypted]"] * 3
    audit = DecryptedRead.objects.get()
    assert (audit.columns, audit.filtered_columns, audit.row_count) == ([], ["currency"], 3)


def test_a_search_pages_with_its_next_cursor_and_keeps_its_filters_out_of_links(synced, admin):
    seen, cursor = [], None
    while True:
        body = search(admin, synced, filters={"currency": "EUR"}, page_size=8, cursor=cursor).json()
        assert body["next"] is None
        seen.extend(row["txn_id"] for row in body["results"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert "EUR" not in cursor
    assert seen == [str(i) for i in range(1, 31)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"filters": ["currency"]}, ""),
        ({"filter": {}}, ""),
        ({"filters": {"currency": {"a": 1}}}, "filters.currency"),
    ],
)
def test_a_bad_search_body_is_a_400(synced, admin, body, field):
    response = admin.post(f"/api/v1/data/{synced.name}/search/", body, format="json")
    assert response.status_code == 400
    assert error_of(response)["details"][0]["field"] == field


def test_a_search_on_an_encrypted_column_without_a_blind_index_says_so(synced, admin):
    response = search(admin, synced, filters={"amount": "1.25"})
    assert response.status_code == 400
    assert "not searchable" in error_of(response)["details"][0]["message"]


def test_cursors_are_signed_for_their_table_and_must_fit_its_key(synced, admin, make_table):
    other = encode_cursor(make_table().name, ["3"])
    response = admin.get(f"/api/v1/data/{synced.name}/", {"cursor": other})
    assert error_of(response)["code"] == "invalid_cursor"
    too_long = encode_cursor(synced.name, ["3", "4"])  # a key that changed between two pages
    response = admin.get(f"/api/v1/data/{synced.name}/", {"cursor": too_long})
    assert response.status_code == 400 and "does not fit the table's key" in error_of(response)["message"]


@pytest.mark.parametrize(
    ("query", "code", "field"),
    [
        ({"nope": "1"}, "invalid_filter", ""),
        ({"amount": "1.25"}, "encrypted_filter_in_url", "amount"),
        ({"txn_id": "not-a-number"}, "invalid_filter", ""),
        ({"cursor": "%%%"}, "invalid_cursor", "cursor"),
        ({"cursor": "WyJ4Il0"}, "invalid_cursor", "cursor"),  # ["x"]: readable, but not signed by this API
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


def test_the_audit_records_the_client_behind_a_trusted_proxy(synced, admin, settings):
    settings.FDM_TRUSTED_PROXY_COUNT = 1
    forwarded = {"HTTP_X_FORWARDED_FOR": "203.0.113.9, 198.51.100.7", "REMOTE_ADDR": "10.0.0.2"}
    admin.get(f"/api/v1/data/{synced.name}/", {"page_size": 1}, **forwarded)
    assert DecryptedRead.objects.get().client == "198.51.100.7"  # what the one trusted proxy appended
