"""Importing and exporting tables: atomic, audited, one instance at a time."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models.signals import post_delete, post_save

from fdm.api.roles import Role, role_set
from syncconfig import services, yaml_io
from syncconfig.models import TableConfig
from tests.syncconfig.conftest import SEED_YAML, table

pytestmark = pytest.mark.django_db


def names() -> list[str]:
    return list(TableConfig.objects.order_by("name").values_list("name", flat=True))


def test_the_seed_example_imports_unchanged():
    result = services.tables_import(document=SEED_YAML, source="seed.yaml")
    assert result.ok and result.created == ["financial_data", "market_data"]
    financial, market = TableConfig.objects.order_by("name")
    assert financial.source_display == "PROD_DB.PUBLIC.FINANCIAL_DATA"
    assert financial.target_display == "public.financial_data"
    assert (financial.sync_mode, financial.schedule) == ("full", "daily")
    assert (financial.encryption_mode, financial.compression_mode) == ("all", "auto")
    assert (market.sync_mode, market.incremental_column, market.schedule) == (
        "incremental",
        "updated_at",
        "hourly",
    )
    assert (market.encryption_mode, market.compression_mode) == ("all", "off")
    assert yaml_io.parse(services.tables_export()) == yaml_io.parse(SEED_YAML)


def test_a_file_with_one_bad_table_changes_nothing():
    services.tables_import(document={"tables": [table("a"), table("b")]})
    before = services.tables_export()
    bad = {"tables": [table("a", schedule="daily"), table("b", sync_mode="sometimes"), table("c")]}
    result = services.tables_import(document=bad)
    assert [str(e) for e in result.errors] == [
        "tables[1] b.sync_mode: must be one of: full, incremental; got string 'sometimes'"
    ]
    assert (result.created, result.updated, result.deleted) == ([], [], [])
    assert services.tables_export() == before


def test_a_bad_file_with_prune_deletes_nothing():
    services.tables_import(document={"tables": [table("a"), table("b"), table("c")]})
    result = services.tables_import(document={"tables": [table("a", enabled="no")]}, prune=True)
    assert not result.ok and result.deleted == []
    assert names() == ["a", "b", "c"]


def test_prune_deletes_tables_the_file_does_not_list():
    services.tables_import(document={"tables": [table("a"), table("b"), table("c")]})
    result = services.tables_import(document={"tables": [table("a")]}, prune=True)
    assert result.ok and result.deleted == ["b", "c"] and result.unchanged == ["a"]
    assert names() == ["a"]


def test_without_prune_unlisted_tables_stay():
    services.tables_import(document={"tables": [table("a"), table("b")]})
    result = services.tables_import(document={"tables": [table("a")]})
    assert result.deleted == [] and names() == ["a", "b"]


def test_a_dry_run_reports_the_plan_and_changes_nothing():
    services.tables_import(document={"tables": [table("a"), table("b")]})
    before = services.tables_export()
    result = services.tables_import(
        document={"tables": [table("a", schedule="daily"), table("c")]}, dry_run=True, prune=True
    )
    assert result.ok and result.dry_run
    assert result.created == ["c"] and result.deleted == ["b"]
    assert [(c.name, c.changes) for c in result.updated] == [("a", {"schedule": ("hourly", "daily")})]
    assert services.tables_export() == before


def test_a_target_held_by_a_table_left_in_place_is_a_clash():
    services.tables_import(
        document={"tables": [table("legacy", postgres={"schema": "finance", "table": "tx"})]}
    )
    document = {"tables": [table("transactions", postgres={"schema": "finance", "table": "tx"})]}
    result = services.tables_import(document=document)
    assert [str(e) for e in result.errors] == [
        "tables[0] transactions.postgres: finance.tx is already the target of table 'legacy', which is not in "
        "this document (prune would delete it)"
    ]
    assert names() == ["legacy"]
    assert services.tables_import(document=document, prune=True).ok
    assert names() == ["transactions"]


def test_two_tables_can_swap_targets_in_one_import():
    a, b = {"schema": "s", "table": "a"}, {"schema": "s", "table": "b"}
    services.tables_import(document={"tables": [table("x", postgres=a), table("y", postgres=b)]})
    assert services.tables_import(document={"tables": [table("x", postgres=b), table("y", postgres=a)]}).ok
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # what COMMIT would check
    assert TableConfig.objects.get(name="x").postgres_table == "b"


def test_an_import_is_audited_with_the_file_and_the_user(config_dir):
    (config_dir / "environments" / "prod.yaml").write_text("tables: []\n")
    user = get_user_model().objects.create_user("ops")
    role_set(user=user, role=Role.ADMIN)  # pruning a table that encrypts needs the admin role
    services.tables_import(
        document={"tables": [table("a"), table("b")]}, source="config/tables.yaml", via="import_tables"
    )
    services.tables_import(
        document={"tables": [table("a", schedule="daily")]},
        source="config/tables.yaml",
        via="import_tables",
        env="prod",
        prune=True,
        user=user,
    )
    a_history = list(TableConfig.history.filter(name="a").order_by("history_date"))
    assert [(h.history_type, h.history_change_reason, h.history_user) for h in a_history] == [
        ("+", "import_tables config/tables.yaml", None),
        ("~", "import_tables config/tables.yaml --env prod", user),
    ]
    assert a_history[-1].schedule == "daily"
    deleted = TableConfig.history.get(name="b", history_type="-")
    assert (deleted.history_change_reason, deleted.history_user) == (
        "import_tables config/tables.yaml --env prod",
        user,
    )


def test_an_unchanged_table_gets_no_history_entry():
    services.tables_import(document={"tables": [table("a")]})
    services.tables_import(document={"tables": [table("a")]})
    assert TableConfig.history.filter(name="a").count() == 1


def test_model_level_changes_are_audited_too():
    services.tables_import(document={"tables": [table("a")]})
    instance = TableConfig.objects.get(name="a")
    instance.schedule = "manual"
    instance._change_reason = "maintenance window"
    instance.save()
    latest = instance.history.latest()
    assert (latest.history_type, latest.schedule, latest.history_change_reason) == (
        "~",
        "manual",
        "maintenance window",
    )
    delta = latest.diff_against(latest.prev_record)
    assert [(c.field, c.old, c.new) for c in delta.changes] == [("schedule", "hourly", "manual")]


def test_saves_and_deletes_go_through_per_instance_signals():
    services.tables_import(document={"tables": [table("a"), table("b")]})
    seen: list[tuple[str, str]] = []

    def saved(sender, instance, **kwargs):
        seen.append(("save", instance.name))

    def deleted(sender, instance, **kwargs):
        seen.append(("delete", instance.name))

    post_save.connect(saved, sender=TableConfig)
    post_delete.connect(deleted, sender=TableConfig)
    try:
        services.tables_import(document={"tables": [table("a", schedule="daily"), table("c")]}, prune=True)
    finally:
        post_save.disconnect(saved, sender=TableConfig)
        post_delete.disconnect(deleted, sender=TableConfig)
    assert seen == [("delete", "b"), ("save", "a"), ("save", "c")]


def test_an_overlay_is_merged_when_an_environment_is_named(config_dir):
    (config_dir / "environments" / "dev.yaml").write_text(
        "defaults:\n  snowflake: {database: DEV_DB}\n  schedule: manual\ntables:\n  - name: b\n    enabled: false\n"
    )
    result = services.tables_import(document={"tables": [table("a"), table("b")]}, env="dev")
    assert result.ok and result.env == "dev"
    a, b = TableConfig.objects.order_by("name")
    assert (a.snowflake_database, a.snowflake_schema, a.schedule, a.enabled) == (
        "DEV_DB",
        "FINANCE",
        "manual",
        True,
    )
    assert (b.snowflake_database, b.enabled) == ("DEV_DB", False)


def test_overlay_errors_stop_the_import(config_dir):
    (config_dir / "environments" / "dev.yaml").write_text("tables:\n  - name: ghost\n    enabled: false\n")
    result = services.tables_import(document={"tables": [table("a")]}, env="dev")
    assert [str(e) for e in result.errors] == [
        "environments/dev.yaml: tables[0] ghost.name: no table named 'ghost' in the configuration"
    ]
    assert names() == []


def test_a_preview_digest_refuses_a_plan_that_changed():
    services.tables_import(document={"tables": [table("a")]})
    document = {"tables": [table("a", schedule="daily")]}
    preview = services.tables_import(document=document, dry_run=True)
    services.tables_import(
        document={"tables": [table("a", schedule="manual")]}
    )  # someone else edits meanwhile
    result = services.tables_import(document=document, expect_digest=preview.digest)
    assert [str(e) for e in result.errors] == [
        "the stored tables changed since the preview; review the new preview before applying it"
    ]
    assert TableConfig.objects.get(name="a").schedule == "manual"
    fresh = services.tables_import(document=document, dry_run=True)
    assert services.tables_import(document=document, expect_digest=fresh.digest).ok


def test_yaml_errors_are_reported_not_raised():
    result = services.tables_import(document="tables:\n  - {name: a\n", source="broken.yaml")
    assert [str(e) for e in result.errors] == [
        "broken.yaml: line 3, column 1: expected ',' or '}', but got '<stream end>' (while parsing a flow "
        "mapping on line 2, column 5)"
    ]
    assert result.errors[0].excerpt.startswith("1 | tables:\n2 |   - {name: a\n  |     ^ while parsing")


def test_export_can_select_tables_by_name():
    services.tables_import(document={"tables": [table("a"), table("b"), table("c")]})
    exported = yaml_io.parse(services.tables_export(names=["c", "a"]))
    assert [t["name"] for t in exported["tables"]] == ["a", "c"]


def test_table_save_validates_through_the_shared_schema_and_audits():
    from django.core.exceptions import ValidationError

    services.tables_import(document={"tables": [table("a")]})
    instance = TableConfig.objects.get(name="a")
    instance.sync_mode = "full"
    with pytest.raises(ValidationError) as caught:
        services.table_save(table=instance, reason="api")
    assert caught.value.message_dict == {
        "incremental_column": ["applies only when sync_mode is incremental; remove it or change sync_mode"]
    }
    instance.incremental_column = ""
    user = get_user_model().objects.create_user("api-client")
    role_set(user=user, role=Role.ADMIN)  # deleting a table that encrypts needs the admin role
    services.table_save(table=instance, user=user, reason="api update")
    latest = instance.history.latest()
    assert (latest.sync_mode, latest.history_user, latest.history_change_reason) == (
        "full",
        user,
        "api update",
    )
    services.table_delete(table=instance, user=user, reason="api delete")
    assert TableConfig.history.filter(name="a", history_type="-").get().history_change_reason == "api delete"
