"""Export then import changes nothing; import then export keeps every setting (property tests)."""

from __future__ import annotations

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings

from syncconfig import schema as table_schema
from syncconfig import services, yaml_io
from syncconfig.models import TableConfig
from tests.syncconfig.strategies import documents, table_dicts


class _Rollback(Exception):
    """Raised to undo one example's database changes."""


@settings(max_examples=100, deadline=None)
@given(table=table_dicts("t"))
def test_generated_tables_are_valid_and_written_in_canonical_form(table):
    parsed, errors = table_schema.validate_table(table)
    assert errors == []
    assert table_schema.table_to_dict(parsed) == table


@settings(max_examples=60, deadline=None)
@given(document=documents())
def test_yaml_written_by_export_reads_back_as_the_same_tables(document):
    text = yaml_io.dump_tables(document["tables"])
    assert yaml_io.parse(text) == document


@pytest.mark.django_db
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=documents(min_tables=1))
def test_import_then_export_keeps_every_setting_and_reimport_is_a_no_op(document):
    try:
        with transaction.atomic():
            first = services.tables_import(document=yaml_io.dump_tables(document["tables"]))
            assert first.ok, first.errors
            assert sorted(first.created) == [t["name"] for t in document["tables"]]

            exported = services.tables_export()
            assert yaml_io.parse(exported) == document

            again = services.tables_import(document=exported)
            assert again.ok and not again.has_changes
            assert again.unchanged == [t["name"] for t in document["tables"]]
            assert services.tables_export() == exported
            raise _Rollback
    except _Rollback:
        pass


@pytest.mark.django_db
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    before=table_dicts("ledger", target=("synced", "ledger")),
    after=table_dicts("ledger", target=("synced", "ledger")),
)
def test_an_import_over_an_existing_table_reports_exactly_the_changed_keys(before, after):
    try:
        with transaction.atomic():
            services.tables_import(document={"tables": [before]})
            result = services.tables_import(document={"tables": [after]})
            expected = table_schema.table_dict_changes(before, after)
            if expected:
                assert [(c.name, c.changes) for c in result.updated] == [("ledger", expected)]
            else:
                assert result.unchanged == ["ledger"]
            assert TableConfig.objects.get(name="ledger").to_table_dict() == after
            raise _Rollback
    except _Rollback:
        pass
