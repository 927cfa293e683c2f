"""The keys that keep a copy trustworthy: deletes, history, lineage, freshness_sla and reconcile. How they are
written, what they refuse, and that they reach the pipeline's TableSpec."""

from __future__ import annotations

from typing import Any

import pytest

from syncconfig import schema as table_schema
from syncconfig.models import TableConfig
from syncengine import specs
from syncengine.pipeline import spec as pipeline
from tests.syncconfig.conftest import table


def messages(**overrides: Any) -> list[str]:
    return [str(error) for error in table_schema.validate_document({"tables": [table(**overrides)]}).errors]


def canonical(**overrides: Any) -> dict[str, Any]:
    parsed, errors = table_schema.validate_table(table(**overrides))
    assert errors == [], errors
    return table_schema.table_to_dict(parsed)


def test_absent_keys_mean_deletes_off_no_history_no_lineage_no_limit_no_reconcile_schedule():
    parsed, _ = table_schema.validate_table(table())
    fields = table_schema.model_fields_from_table(parsed)
    assert fields["deletes_mode"] == "off"
    assert fields["deletes_max_ratio"] == table_schema.DEFAULT_DELETE_MAX_RATIO
    assert (fields["keep_history"], fields["lineage"]) == (False, False)
    assert fields["max_staleness_minutes"] is None
    assert fields["reconcile_schedule"] == ""
    assert not {"deletes", "history", "lineage", "freshness_sla", "reconcile"} & set(canonical())


def test_each_key_is_kept_through_export_in_canonical_form():
    written = canonical(
        deletes={"mode": "soft", "max_ratio": 0.25},
        history=True,
        lineage=True,
        freshness_sla="90m",
        reconcile={"schedule": "daily"},
    )
    assert written["deletes"] == {"mode": "soft", "max_ratio": 0.25}
    assert (written["history"], written["lineage"]) == (True, True)
    assert written["freshness_sla"] == "1h30m"
    assert written["reconcile"] == {"schedule": "daily"}
    assert canonical(**written) == written  # export then import is a no-op


def test_a_default_ratio_is_left_out_and_a_mode_alone_is_written_alone():
    assert canonical(deletes={"mode": "hard"})["deletes"] == {"mode": "hard"}
    assert "deletes" not in canonical(deletes={"mode": "off", "max_ratio": 0.1})


@pytest.mark.parametrize(
    ("sla", "minutes", "written"),
    [("30m", 30, "30m"), ("2h", 120, "2h"), ("1d", 1440, "1d"), ("1d2h", 1560, "1d2h"), ("120m", 120, "2h")],
)
def test_freshness_sla_reads_days_hours_and_minutes(sla, minutes, written):
    parsed, errors = table_schema.validate_table(table(freshness_sla=sla))
    assert errors == []
    assert table_schema.model_fields_from_table(parsed)["max_staleness_minutes"] == minutes
    assert table_schema.table_to_dict(parsed)["freshness_sla"] == written


def test_the_older_max_staleness_minutes_is_still_read_and_exported_as_freshness_sla():
    written = canonical(max_staleness_minutes=180)
    assert written["freshness_sla"] == "3h"
    assert "max_staleness_minutes" not in written


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"deletes": {"mode": "purge"}},
            "tables[0] transactions.deletes.mode: must be one of: off, hard, soft; got string 'purge'",
        ),
        (
            {"deletes": {"mode": "hard", "max_ratio": 0}},
            "tables[0] transactions.deletes.max_ratio: must be more than 0, got 0",
        ),
        (
            {"deletes": {"max_ratio": 1.5}},
            "tables[0] transactions.deletes.max_ratio: must be at most 1, got 1.5",
        ),
        (
            {"deletes": {"max_ratio": "10%"}},
            "tables[0] transactions.deletes.max_ratio: must be a number, got string '10%'",
        ),
        (
            {"deletes": {"mode": "hard", "ratio": 0.2}},
            "tables[0] transactions.deletes.ratio: unknown key; did you mean 'max_ratio'?; allowed keys: mode, "
            "max_ratio",
        ),
        ({"history": "yes"}, "tables[0] transactions.history: must be true or false, got string 'yes'"),
        (
            {"freshness_sla": "2 hours"},
            'tables[0] transactions.freshness_sla: must be a duration such as "30m", "2h", "1d" or "1h30m"; '
            "got '2 hours'",
        ),
        (
            {"freshness_sla": "0m"},
            "tables[0] transactions.freshness_sla: must be between 1m and 366d; got '0m'",
        ),
        (
            {"freshness_sla": "2h", "max_staleness_minutes": 120},
            "tables[0] transactions.max_staleness_minutes: is the older spelling of freshness_sla; give only one",
        ),
        (
            {"reconcile": {"schedule": "manual"}},
            "tables[0] transactions.reconcile.schedule: must be hourly, daily or a cron expression (leave "
            "reconcile out for no schedule)",
        ),
        (
            {"reconcile": {"schedule": "61 * * * *"}},
            "tables[0] transactions.reconcile.schedule: invalid cron expression '61 * * * *': the minute field "
            "'61' is not valid; it takes 0-59",
        ),
        ({"reconcile": {}}, "tables[0] transactions.reconcile.schedule: is required"),
    ],
)
def test_it_refuses_bad_values_naming_the_key(overrides, expected):
    assert messages(**overrides) == [expected]


@pytest.mark.django_db
def test_the_settings_reach_the_table_spec_the_pipeline_runs_on():
    config = TableConfig()
    config.apply_table(
        table_schema.validate_table(
            table(deletes={"mode": "soft", "max_ratio": 0.5}, history=True, lineage=True)
        ).table
    )
    config.save()

    spec = specs.table_spec(config)

    assert spec.deletes == pipeline.DeletesSpec(mode=pipeline.DeleteMode.SOFT, max_ratio=0.5)
    assert (spec.history, spec.lineage) == (True, True)
