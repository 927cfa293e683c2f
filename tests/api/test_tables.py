"""Table endpoints: the YAML's table dict in and out, validated by the same schema as import and admin."""

from __future__ import annotations

import textwrap

import pytest

from syncconfig import services
from syncconfig.models import TableConfig
from tests.api.conftest import error_of, table_dict

pytestmark = pytest.mark.django_db


def test_a_created_table_reads_back_as_the_same_canonical_dict_and_exports_as_yaml(operator):
    body = table_dict("fx_rates", schedule="daily", primary_key=["RATE_ID"], freshness_sla="1h30m")
    created = operator.post("/api/v1/tables/", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json() == body
    assert operator.get("/api/v1/tables/fx_rates/").json() == body
    exported = operator.get("/api/v1/tables/yaml-export/?name=fx_rates")
    assert exported["Content-Type"].startswith("application/yaml")
    assert "name: fx_rates" in exported.content.decode()
    assert TableConfig.objects.get(name="fx_rates").to_table_dict() == services.selectors.table_dicts()[0]


def test_invalid_tables_are_refused_with_the_yaml_key_paths_of_every_problem(operator):
    body = table_dict("bad", sync_mode="incremental", snowflake={"database": "DB", "schema": "S", "table": 7})
    response = operator.post("/api/v1/tables/", body, format="json")
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert "snowflake.table" in {detail["field"] for detail in error["details"]}
    assert not TableConfig.objects.filter(name="bad").exists()


def test_a_taken_name_or_target_is_refused_on_its_field(operator):
    operator.post("/api/v1/tables/", table_dict("first"), format="json")
    same_name = operator.post("/api/v1/tables/", table_dict("first"), format="json")
    assert same_name.status_code == 400
    assert "name" in [d["field"] for d in error_of(same_name)["details"]]
    same_target = operator.post(
        "/api/v1/tables/",
        table_dict("second", postgres={"schema": "public", "table": "first"}),
        format="json",
    )
    assert same_target.status_code == 400
    assert "postgres.table" in [d["field"] for d in error_of(same_target)["details"]]


def test_the_api_accepts_exactly_what_the_yaml_import_accepts(operator):
    # The seed's style, verbatim keys: encryption and compression flags, incremental with a plain column name.
    body = table_dict(
        "market_data", sync_mode="incremental", incremental_column="updated_at", schedule="hourly"
    )
    assert services.tables_import(document={"tables": [body]}, dry_run=True).ok
    assert operator.post("/api/v1/tables/", body, format="json").status_code == 201
    refused = table_dict("market_two", sync_mode="incremental")  # no incremental column
    assert not services.tables_import(document={"tables": [refused]}, dry_run=True).ok
    assert operator.post("/api/v1/tables/", refused, format="json").status_code == 400


def test_put_replaces_every_setting_and_patch_merges(operator):
    operator.post("/api/v1/tables/", table_dict("ledger", notes="first", schedule="daily"), format="json")
    replaced = operator.put("/api/v1/tables/ledger/", table_dict("ledger"), format="json")
    assert replaced.status_code == 200
    assert "notes" not in replaced.json() and replaced.json()["schedule"] == "manual"
    patched = operator.patch(
        "/api/v1/tables/ledger/", {"notes": "ok", "snowflake": {"table": "LEDGER_V2"}}, format="json"
    )
    assert patched.status_code == 200, patched.json()
    assert patched.json()["notes"] == "ok"
    assert patched.json()["snowflake"] == {"database": "FDM_ENGINE", "schema": "PUBLIC", "table": "LEDGER_V2"}
    bad = operator.patch("/api/v1/tables/ledger/", {"batch_size": 0}, format="json")
    assert bad.status_code == 400 and error_of(bad)["details"][0]["field"] == "batch_size"
    assert TableConfig.objects.get(name="ledger").batch_size == 100_000


def test_put_with_another_name_renames_the_table(operator):
    operator.post("/api/v1/tables/", table_dict("old_name"), format="json")
    body = {**table_dict("new_name"), "postgres": {"schema": "public", "table": "old_name"}}
    assert operator.put("/api/v1/tables/old_name/", body, format="json").status_code == 200
    assert operator.get("/api/v1/tables/old_name/").status_code == 404
    assert operator.get("/api/v1/tables/new_name/").status_code == 200


def test_delete_removes_the_table_and_its_history_stays_readable(operator, viewer):
    operator.post("/api/v1/tables/", table_dict("gone"), format="json")
    operator.patch("/api/v1/tables/gone/", {"notes": "about to go"}, format="json")
    assert operator.delete("/api/v1/tables/gone/").status_code == 204
    assert viewer.get("/api/v1/tables/gone/").status_code == 404
    history = viewer.get("/api/v1/tables/gone/history/").json()
    assert [entry["action"] for entry in history["results"]] == ["deleted", "changed", "created"]
    changed = history["results"][1]
    assert changed["changes"] == {"notes": ["", "about to go"]}
    assert changed["reason"] == "api" and changed["user"].startswith("operator-")


def test_the_list_filters_searches_and_pages(viewer):
    for name, enabled, mode in (
        ("alpha", True, "full"),
        ("beta", False, "full"),
        ("gamma", True, "incremental"),
    ):
        extra = {"incremental_column": "UPDATED_AT"} if mode == "incremental" else {}
        services.table_save_document(
            document=table_dict(name, enabled=enabled, sync_mode=mode, notes=f"the {name} ledger", **extra)
        )
    names = lambda response: [t["name"] for t in response.json()["results"]]  # noqa: E731
    assert names(viewer.get("/api/v1/tables/?enabled=true")) == ["alpha", "gamma"]
    assert names(viewer.get("/api/v1/tables/?sync_mode=incremental")) == ["gamma"]
    assert names(viewer.get("/api/v1/tables/?search=BETA")) == ["beta"]
    page = viewer.get("/api/v1/tables/?page_size=2&page=2").json()
    assert page["count"] == 3 and [t["name"] for t in page["results"]] == ["gamma"] and page["next"] is None
    bad = viewer.get("/api/v1/tables/?enabled=perhaps")
    assert bad.status_code == 400 and error_of(bad)["details"] == [
        {"field": "enabled", "message": "must be true or false, got 'perhaps'"}
    ]


IMPORT_YAML = textwrap.dedent(
    """\
    tables:
      - name: "financial_data"
        snowflake: {database: "PROD_DB", schema: "PUBLIC", table: "FINANCIAL_DATA"}
        postgres: {schema: "public", table: "financial_data"}
        sync_mode: "full"
        schedule: "daily"
        encryption: true
        compression: true
    """
)


def test_a_yaml_import_previews_with_dry_run_then_applies(operator):
    headers = {"content_type": "application/yaml"}
    preview = operator.post("/api/v1/tables/yaml-import/?dry_run=true", IMPORT_YAML, **headers)
    assert preview.status_code == 200, preview.json()
    assert preview.json()["created"] == ["financial_data"] and preview.json()["dry_run"] is True
    assert not TableConfig.objects.exists()
    digest = preview.json()["digest"]
    applied = operator.post(f"/api/v1/tables/yaml-import/?expect_digest={digest}", IMPORT_YAML, **headers)
    assert applied.status_code == 200 and applied.json()["created"] == ["financial_data"]
    again = operator.post("/api/v1/tables/yaml-import/", IMPORT_YAML, **headers)
    assert again.json()["unchanged"] == ["financial_data"]
    exported = operator.get("/api/v1/tables/yaml-export/").content.decode()
    assert operator.post("/api/v1/tables/yaml-import/", exported, **headers).json()["unchanged"] == [
        "financial_data"
    ]


def test_an_invalid_import_changes_nothing_and_lists_every_error(operator):
    document = IMPORT_YAML + '  - name: "bad"\n    sync_mode: "fulll"\n'
    response = operator.post("/api/v1/tables/yaml-import/", document, content_type="application/yaml")
    assert response.status_code == 400
    fields = [detail["field"] for detail in error_of(response)["details"]]
    assert "tables[1] bad.snowflake" in fields and "tables[1] bad.sync_mode" in fields
    assert not TableConfig.objects.exists()
    broken = operator.post("/api/v1/tables/yaml-import/", "tables: [", content_type="application/yaml")
    assert broken.status_code == 400 and "line" in error_of(broken)["details"][0]["message"]


def test_a_json_document_imports_like_yaml(operator):
    response = operator.post(
        "/api/v1/tables/yaml-import/?dry_run=true", {"tables": [table_dict("jsonish")]}, format="json"
    )
    assert response.status_code == 200 and response.json()["created"] == ["jsonish"]
