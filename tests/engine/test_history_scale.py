"""Every page and list endpoint reads a fixed number of SQL queries, whatever the size of the history.

A small history (3 tables, 30 runs) is measured first; then 200 tables with schedules and 100,000 runs over
30 days are added and every page is measured again. The counts must be equal, and under a fixed bound.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_q.models import Schedule
from rest_framework.test import APIClient

from fdm.api.roles import Role
from fdm.apikeys.services import service_key_create
from syncconfig.models import TableConfig
from syncengine.dev.history import history_seed
from syncengine.models import SyncRun
from syncengine.schedules import SCHEDULE_NAME_PREFIX

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

# No page reads more than this many queries, for 3 tables or 200 tables and 100,000 runs.
QUERY_BOUND = 30
TABLES = 200
RUNS = 100_000


def _pages(admin: Client, api: APIClient, table: TableConfig, run: SyncRun) -> dict[str, Callable]:
    return {
        "admin front page (dashboard)": lambda: admin.get(reverse("admin:index")),
        "tables changelist (status board)": lambda: admin.get(
            reverse("admin:syncconfig_tableconfig_changelist")
        ),
        "runs changelist": lambda: admin.get(reverse("admin:syncengine_syncrun_changelist")),
        "table change page": lambda: admin.get(
            reverse("admin:syncconfig_tableconfig_change", args=[table.pk])
        ),
        "run change page": lambda: admin.get(reverse("admin:syncengine_syncrun_change", args=[run.pk])),
        "GET /api/v1/tables/": lambda: api.get("/api/v1/tables/"),
        "GET /api/v1/pipeline/runs/": lambda: api.get("/api/v1/pipeline/runs/"),
        "GET /api/v1/pipeline/tables/": lambda: api.get("/api/v1/pipeline/tables/"),
        "GET /api/v1/pipeline/tables/{name}/": lambda: api.get(f"/api/v1/pipeline/tables/{table.name}/"),
        "GET /metrics": lambda: admin.get("/metrics"),
    }


def _query_counts(pages: dict[str, Callable]) -> dict[str, int]:
    counts = {}
    for name, get in pages.items():
        get()  # warm caches (content types, permissions) that a second request would not read again
        with CaptureQueriesContext(connection) as queries:
            response = get()
        assert response.status_code == 200, f"{name}: {response.status_code}"
        counts[name] = len(queries)
    return counts


@pytest.fixture
def clients(settings) -> tuple[Client, APIClient]:
    settings.FDM_METRICS_TOKEN = ""
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", "root@example.com", "x"))
    _, key = service_key_create(username="scale-viewer", role=Role.parse("viewer"))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return admin, api


def test_pages_and_endpoints_read_a_fixed_number_of_queries_for_200_tables_and_100000_runs(clients):
    admin, api = clients
    small = history_seed(tables=3, runs=30, prefix="small")
    table = small.tables[1]
    run = SyncRun.objects.filter(table=table).first()
    assert run is not None
    few = _query_counts(_pages(admin, api, table, run))

    history_seed(tables=TABLES, runs=RUNS, prefix="load", seed=2)
    assert SyncRun.objects.count() == 30 + RUNS
    assert Schedule.objects.filter(name__startswith=SCHEDULE_NAME_PREFIX).count() == (
        TableConfig.objects.filter(enabled=True).exclude(schedule="manual").count()
    )
    many = _query_counts(_pages(admin, api, table, run))

    grown = {name: (few[name], many[name]) for name in few if few[name] != many[name]}
    assert not grown, f"queries (3 tables, 30 runs) -> (203 tables, 100,030 runs): {grown}"
    over = {name: count for name, count in many.items() if count > QUERY_BOUND}
    assert not over, f"pages over {QUERY_BOUND} queries: {over}"
