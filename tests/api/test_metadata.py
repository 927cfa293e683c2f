"""Metadata endpoints against the Snowflake emulator (real connector) and the test database as the target."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from syncconfig import services as config_services
from syncengine.connections import target_dsn
from tests.api.conftest import error_of, table_dict

pytestmark = pytest.mark.django_db


@pytest.fixture
def source_table(seed_source) -> Iterator[str]:
    """A seeded source table (25 rows) and its configuration; its target table is dropped afterwards."""
    name = f"meta_{uuid.uuid4().hex[:8]}"
    seed_source(name)
    config_services.table_save_document(document=table_dict(name))
    yield name
    with psycopg.connect(target_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS public.{}").format(sql.Identifier(name)))


def _target(name: str, ddl: str, rows: int = 0) -> None:
    with psycopg.connect(target_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE public.{} (" + ddl + ")").format(sql.Identifier(name)))
        for i in range(rows):
            conn.execute(
                sql.SQL("INSERT INTO public.{} (txn_id) VALUES (%s)").format(sql.Identifier(name)), (i,)
            )


def test_source_columns_come_with_their_postgres_types_and_a_missing_target_is_reported(viewer, source_table):
    response = viewer.get(f"/api/v1/metadata/tables/{source_table}/")
    assert response.status_code == 200, response.json()
    body = response.json()
    columns = {
        c["name"]: (c["type"], c["postgres_type"], c["target_name"]) for c in body["source"]["columns"]
    }
    assert columns == {
        "TXN_ID": ("NUMBER(38,0)", "numeric(38,0)", "txn_id"),
        "AMOUNT": ("NUMBER(18,2)", "numeric(18,2)", "amount"),
        "CURRENCY": ("TEXT", "text", "currency"),
        "UPDATED_AT": ("TIMESTAMP_NTZ", "timestamp without time zone", "updated_at"),
    }
    assert body["target"]["exists"] is False
    assert body["drift"]["in_sync"] is None
    assert body["drift"]["outcome"] == ["the target does not exist yet; the next run creates it"]


def test_drift_lists_new_dropped_and_retyped_columns(viewer, source_table):
    _target(source_table, "txn_id numeric(38,0), amount integer, legacy_flag text")
    drift = viewer.get(f"/api/v1/metadata/tables/{source_table}/").json()["drift"]
    assert drift["in_sync"] is False
    assert drift["added"] == ["currency", "updated_at"]
    assert drift["dropped"] == ["legacy_flag"]
    assert drift["changed"] == [
        {
            "column": "amount",
            "source_type": "NUMBER(18,2)",
            "needs": "numeric(18,2)",
            "target_type": "integer",
        }
    ]
    assert drift["policy"] == "evolve" and any("widened column amount" in line for line in drift["outcome"])


def test_row_counts_on_both_sides(viewer, source_table):
    counts = viewer.get(f"/api/v1/metadata/tables/{source_table}/row-counts/").json()
    assert counts == {"table": source_table, "source_rows": 25, "target_rows": None, "difference": None}
    _target(source_table, "txn_id numeric(38,0)", rows=5)
    counts = viewer.get(f"/api/v1/metadata/tables/{source_table}/row-counts/").json()
    assert (counts["source_rows"], counts["target_rows"], counts["difference"]) == (25, 5, 20)


def test_a_missing_source_table_is_404_and_an_unconfigured_snowflake_is_503(viewer, snowflake, monkeypatch):
    config_services.table_save_document(document=table_dict("not_in_snowflake"))
    missing = viewer.get("/api/v1/metadata/tables/not_in_snowflake/")
    assert missing.status_code == 404 and error_of(missing)["code"] == "source_not_found"
    monkeypatch.delenv("SNOWFLAKE_ACCOUNT")
    unconfigured = viewer.get("/api/v1/metadata/tables/not_in_snowflake/row-counts/")
    assert unconfigured.status_code == 503
    assert error_of(unconfigured) == {
        "code": "snowflake_unavailable",
        "message": "Snowflake: SNOWFLAKE_ACCOUNT is not set",
        "details": [],
    }


def test_the_type_mapping_is_exact(viewer):
    mapping = {
        m["snowflake_type"]: m["postgres_type"] for m in viewer.get("/api/v1/metadata/type-mapping/").json()
    }
    assert mapping["NUMBER(p,s)"] == "numeric(p,s)"
    assert mapping["TIMESTAMP_TZ"] == "timestamp with time zone" and mapping["VARIANT"] == "jsonb"
    assert mapping["FLOAT"] == "double precision" and mapping["BINARY"] == "bytea"
