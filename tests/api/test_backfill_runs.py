"""Starting a backfill or a run allowed past the delete guard through the API: the options are checked before
anything is queued, and a bad one answers 400 naming its field."""

from __future__ import annotations

import pytest
from django_q.models import OrmQ

from syncconfig import services as config_services
from syncengine.choices import RunStatus, RunTrigger
from syncengine.models import SyncRun
from tests.api.conftest import error_of, table_dict

pytestmark = pytest.mark.django_db

RUNS = "/api/v1/pipeline/runs/"


@pytest.fixture
def ledger():
    table = config_services.table_save_document(
        document=table_dict("ledger", sync_mode="incremental", incremental_column="updated_at")
    )
    # A finished run that stored a timestamp watermark: the range is read as that kind.
    SyncRun.objects.create(
        table=table,
        table_name=table.name,
        trigger=RunTrigger.API,
        status=RunStatus.SUCCEEDED,
        watermark_after={"type": "timestamp_ntz", "value": "2026-01-01T00:10:00.000000"},
    )
    return table


def _field_errors(response) -> dict[str, str]:
    return {detail["field"]: detail["message"] for detail in error_of(response)["details"]}


def test_a_backfill_is_queued_with_its_range_and_the_backfill_trigger(operator, ledger):
    response = operator.post(
        RUNS, {"table": "ledger", "from": "2026-01-01T00:02:00", "to": "2026-01-01 00:05:00"}, format="json"
    )

    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["backfill_from"], body["backfill_to"], body["allow_deletes"]) == (
        "2026-01-01T00:02:00",
        "2026-01-01 00:05:00",
        False,
    )
    run = SyncRun.objects.get(pk=body["id"])
    assert run.trigger == RunTrigger.BACKFILL
    assert run.log[0]["fields"]["backfill"] == {"from": "2026-01-01T00:02:00", "to": "2026-01-01 00:05:00"}


def test_allow_deletes_is_recorded_on_the_run(operator, ledger):
    response = operator.post(RUNS, {"table": "ledger", "allow_deletes": True}, format="json")

    assert response.status_code == 202
    run = SyncRun.objects.get(pk=response.json()["id"])
    assert run.allow_deletes and run.trigger == RunTrigger.API


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"from": "last tuesday"}, "from", "is not a timestamp"),
        ({"from": "2026-01-01T00:02:00", "to": "later"}, "to", "is not a timestamp"),
        ({"from": "2026-01-01T00:05:00", "to": "2026-01-01T00:02:00"}, "to", "is before from"),
        ({"to": "2026-01-01T00:02:00"}, "from", "needs a from value"),
        ({"from": "2026-01-01", "full_refresh": True}, "from", "exclude each other"),
        ({"from": ""}, "from", "blank"),
    ],
)
def test_a_bad_range_is_refused_naming_the_field_and_nothing_is_queued(
    operator, ledger, body, field, message
):
    before = SyncRun.objects.count()

    response = operator.post(RUNS, {"table": "ledger", **body}, format="json")

    assert response.status_code == 400
    assert message in _field_errors(response)[field]
    assert SyncRun.objects.count() == before
    assert OrmQ.objects.count() == 0


def test_a_backfill_of_a_full_table_is_refused(operator):
    config_services.table_save_document(document=table_dict("snapshot"))

    response = operator.post(RUNS, {"table": "snapshot", "from": "1"}, format="json")

    assert response.status_code == 400
    assert "not incremental" in _field_errors(response)["from"]


def test_a_backfill_before_any_watermark_is_refused(operator):
    config_services.table_save_document(
        document=table_dict("fresh", sync_mode="incremental", incremental_column="updated_at")
    )

    response = operator.post(RUNS, {"table": "fresh", "from": "2026-01-01"}, format="json")

    assert response.status_code == 400
    assert "no watermark yet" in _field_errors(response)["from"]
