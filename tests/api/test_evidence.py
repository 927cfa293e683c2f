"""A run's evidence pack: built from a real run (emulator -> PostgreSQL), served by the API and the admin, and
verifiable by anyone with its own SHA-256."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from syncengine import recorder, services, specs
from syncengine.choices import RunStatus, RunTrigger
from syncengine.pipeline.protection.keyring import Keyring

pytestmark = pytest.mark.django_db


def evidence_url(run_id: int) -> str:
    return f"/api/v1/pipeline/runs/{run_id}/evidence/"


def verified(document: dict) -> bool:
    """The check an auditor runs: the SHA-256 of the rest of the document, serialised canonically."""
    rest = {key: value for key, value in document.items() if key != "sha256"}
    canonical = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(canonical).hexdigest() == document["sha256"]


@pytest.fixture
def encrypted_run(make_table, seed_source, monkeypatch):
    ring = Keyring.generate("audit1")
    monkeypatch.setenv("FDM_ENCRYPTION_KEYS", ring.format())
    table = make_table(
        sync_mode="incremental",
        incremental_column="UPDATED_AT",
        primary_key=["TXN_ID"],
        encryption_mode="columns",
        encrypted_columns=["AMOUNT"],
    )
    seed_source(table.snowflake_table, rows=12)
    run = services.run_create(table=table, trigger=RunTrigger.COMMAND)
    run = services.run_execute(run_id=run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    return table, run, ring


def test_the_evidence_pack_says_what_the_run_read_wrote_and_ran_with(viewer, encrypted_run):
    table, run, ring = encrypted_run

    response = viewer.get(evidence_url(run.pk))

    assert response.status_code == 200
    document = response.json()
    assert document["format"] == "fdm-run-evidence/1"
    assert document["run"]["id"] == run.pk and document["run"]["status"] == "succeeded"
    assert document["configuration"]["table"] == table.to_table_dict()
    assert document["configuration"]["spec_sha256"] == recorder.config_hash(specs.table_spec(table))
    extract = [query for query in document["source"]["queries"] if query["purpose"] == "extract"]
    assert len(extract) == 1 and extract[0]["query_id"]
    assert extract[0]["sql"].startswith('SELECT "TXN_ID"')
    assert [column["name"] for column in document["source"]["columns"]] == [
        "TXN_ID",
        "AMOUNT",
        "CURRENCY",
        "UPDATED_AT",
    ]
    assert {"name": "amount", "type": "bytea", "source": "AMOUNT"} in document["target"]["columns"]
    assert document["counts"]["extracted"] == 12 and document["counts"]["inserted"] == 12
    assert document["watermark"]["after"] == run.watermark_after
    assert document["reconciliation"]["status"] == "equal"  # the light check after the run
    assert document["key_ids"] == ["audit1"]
    assert ring.format().split(":", 1)[1] not in json.dumps(document)  # an id, never a key
    assert verified(document)


def test_a_changed_pack_no_longer_verifies(viewer, encrypted_run):
    _, run, _ = encrypted_run
    document = viewer.get(evidence_url(run.pk)).json()

    document["counts"]["extracted"] += 1

    assert not verified(document)


def test_the_column_hashes_change_when_the_schema_does(viewer, encrypted_run, seed_source, snowflake):
    table, first, _ = encrypted_run
    snowflake.execute(
        f"ALTER TABLE {table.snowflake_database}.{table.snowflake_schema}.{table.snowflake_table} "
        "ADD COLUMN NOTE TEXT"
    )
    second = services.run_execute(run_id=services.run_create(table=table, trigger=RunTrigger.COMMAND).pk)
    assert second.status == RunStatus.SUCCEEDED, second.error_message

    before, after = (viewer.get(evidence_url(run.pk)).json() for run in (first, second))

    assert before["source"]["columns_sha256"] != after["source"]["columns_sha256"]
    assert before["target"]["columns_sha256"] != after["target"]["columns_sha256"]


def test_an_unknown_run_is_404_and_an_anonymous_caller_is_refused(viewer, client_for):
    assert viewer.get(evidence_url(999_999)).status_code == 404
    assert client_for(None).get(evidence_url(1)).status_code in (401, 403)


def test_the_admin_offers_the_pack_as_a_download_on_a_finished_run(client, encrypted_run):
    _, run, _ = encrypted_run
    client.force_login(User.objects.create_superuser("auditor", "a@example.com", "x"))

    page = client.get(reverse("admin:syncengine_syncrun_change", args=[run.pk]))
    download = client.get(reverse("admin:syncengine_syncrun_evidence", args=[run.pk]))

    assert reverse("admin:syncengine_syncrun_evidence", args=[run.pk]) in page.content.decode()
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment;")
    assert verified(json.loads(download.content))
