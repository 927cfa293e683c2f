"""`parallel: {slices: N}`: one schema for YAML, admin form and API; kept through export; refused with the key
named; reaches the pipeline's TableSpec."""

from __future__ import annotations

from typing import Any

import pytest

from syncconfig import schema as table_schema
from syncconfig import services
from syncconfig.models import TableConfig
from syncengine import specs
from tests.syncconfig.conftest import table
from tests.syncconfig.test_admin import change_url, form_data


def messages(**overrides: Any) -> list[str]:
    return [str(error) for error in table_schema.validate_document({"tables": [table(**overrides)]}).errors]


def canonical(**overrides: Any) -> dict[str, Any]:
    parsed, errors = table_schema.validate_table(table(**overrides))
    assert errors == [], errors
    return table_schema.table_to_dict(parsed)


def test_absent_means_one_process_and_is_left_out_of_the_export():
    parsed, _ = table_schema.validate_table(table(compression=False))
    assert table_schema.model_fields_from_table(parsed)["parallel_slices"] is None
    assert "parallel" not in canonical(compression=False)


def test_it_is_kept_through_export_and_import_is_then_a_no_op():
    written = canonical(compression=False, parallel={"slices": 8})
    assert written["parallel"] == {"slices": 8}
    assert canonical(**written) == written


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"slices": 1}, "parallel.slices: must be between 2 and 64, got 1"),
        ({"slices": 65}, "parallel.slices: must be between 2 and 64, got 65"),
        ({"slices": "4"}, "parallel.slices: must be an integer, got string '4'"),
        ({}, "parallel.slices: is required"),
        (4, "parallel: must be a mapping, got integer 4"),
    ],
)
def test_bad_values_are_refused_naming_the_key(value, expected):
    assert messages(compression=False, parallel=value) == [f"tables[0] transactions.{expected}"]


def test_compression_with_slices_is_accepted():
    assert messages(parallel={"slices": 4}, compression={"columns": ["DESCRIPTION"]}) == []


@pytest.mark.django_db
def test_it_reaches_the_table_spec(config_dir):
    services.tables_import(document={"tables": [table(compression=False, parallel={"slices": 6})]})
    config = TableConfig.objects.get(name="transactions")
    assert config.parallel_slices == 6
    assert specs.table_spec(config).slices == 6
    assert config.to_table_dict()["parallel"] == {"slices": 6}


@pytest.mark.django_db
def test_the_admin_form_takes_it_and_refuses_a_bad_value_on_its_field(admin_client, config_dir):
    services.tables_import(document={"tables": [table(compression=False)]})
    config = TableConfig.objects.get(name="transactions")
    response = admin_client.post(change_url(config), form_data(config, parallel_slices="1"))
    assert response.status_code == 200
    assert "must be between 2 and 64, got 1" in str(
        response.context["adminform"].form.errors["parallel_slices"]
    )

    response = admin_client.post(change_url(config), form_data(config, parallel_slices="4"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    config.refresh_from_db()
    assert config.parallel_slices == 4


@pytest.mark.django_db
def test_the_api_takes_it_and_refuses_a_bad_value_naming_the_key(client):
    from rest_framework.test import APIClient

    from fdm.api.roles import Role
    from fdm.apikeys.services import service_key_create

    api = APIClient()
    api.credentials(
        HTTP_AUTHORIZATION=f"Api-Key {service_key_create(username='op', role=Role.parse('operator'))[1]}"
    )
    body = table(name="fx_rates", compression=False, encryption=False, parallel={"slices": 4})
    created = api.post("/api/v1/tables/", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["parallel"] == {"slices": 4}
    refused = api.post(
        "/api/v1/tables/", {**body, "name": "other", "parallel": {"slices": 100}}, format="json"
    )
    assert refused.status_code == 400
    details = refused.json()["error"]["details"] if "error" in refused.json() else refused.json()["details"]
    assert {"field": "parallel.slices", "message": "must be between 2 and 64, got 100"}.items() <= details[
        0
    ].items()
