"""A configured table becomes the typed specification the pipeline runs on (syncengine.specs)."""

from __future__ import annotations

import pytest

from syncconfig import services as config_services
from syncconfig.models import TableConfig
from syncengine.specs import table_spec
from tests.syncconfig.conftest import SEED_YAML, table

pytestmark = pytest.mark.django_db


def test_the_seed_becomes_the_pipeline_spec_the_engine_runs():
    config_services.tables_import(document=SEED_YAML)
    spec = table_spec(TableConfig.objects.get(name="market_data"))
    assert spec.source.table == "MARKET_DATA" and spec.target.table == "market_data"
    assert spec.mode == "incremental" and spec.watermark_column == "updated_at"
    assert spec.encryption.mode == "all" and spec.compression.mode == "off"
    assert spec.include_columns is None and spec.primary_key == ()
    assert spec.drift_policy == "evolve" and spec.batch_size == 100_000


def test_a_full_table_becomes_a_complete_pipeline_spec():
    config_services.tables_import(
        document={
            "tables": [
                table(
                    columns={"exclude": ["INTERNAL_NOTE"]},
                    column_names={"TXN_ID": "transaction_id"},
                    schema_drift="ignore",
                    batch_size=5000,
                )
            ]
        }
    )
    spec = table_spec(TableConfig.objects.get())
    assert spec.primary_key == ("TXN_ID",)
    assert spec.exclude_columns == ("INTERNAL_NOTE",)
    assert spec.column_names == {"TXN_ID": "transaction_id"}
    assert spec.encryption.columns == ("ACCOUNT_NUMBER", "IBAN") and spec.encryption.searchable == (
        "ACCOUNT_NUMBER",
    )
    assert spec.compression.mode == "columns" and spec.compression.columns == ("DESCRIPTION",)
    assert spec.drift_policy == "ignore" and spec.batch_size == 5000
