"""GET /api/v1/incidents/: the incidents, newest first, for viewers; filtered by status and kind."""

from __future__ import annotations

import pytest

from fdm.notifications.choices import IncidentKind
from fdm.notifications.services import incident_open, incident_resolve
from tests.api.conftest import error_of

pytestmark = pytest.mark.django_db


def test_viewers_list_incidents_newest_first_and_filter_them(client_for):
    incident_open(kind=IncidentKind.RUN_FAILED, key="ledger", table="ledger", title="Sync of ledger failed")
    incident_open(kind=IncidentKind.TABLE_STALE, key="fx", table="fx", title="fx is stale", detail="2 h old")
    incident_resolve(kind=IncidentKind.RUN_FAILED, key="ledger", resolution="run #9 succeeded")
    viewer = client_for("viewer")

    everything = viewer.get("/api/v1/incidents/").json()
    open_only = viewer.get("/api/v1/incidents/?status=open").json()
    failures = viewer.get("/api/v1/incidents/?kind=run_failed").json()

    assert [(i["kind"], i["key"], i["status"]) for i in everything["results"]] == [
        ("table_stale", "fx", "open"),
        ("run_failed", "ledger", "resolved"),
    ]
    assert [i["key"] for i in open_only["results"]] == ["fx"]
    assert [(i["key"], i["resolution"]) for i in failures["results"]] == [("ledger", "run #9 succeeded")]
    assert client_for(None).get("/api/v1/incidents/").status_code == 401


def test_an_unknown_status_filter_is_refused_naming_the_choices(client_for):
    response = client_for("viewer").get("/api/v1/incidents/?status=closed")

    assert response.status_code == 400
    assert "expected one of open, resolved, got 'closed'" in str(error_of(response))
