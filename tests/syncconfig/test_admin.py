"""The admin: edits validated by the shared schema and audited, YAML import preview and confirm, export."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from fdm.api.roles import Role, role_set
from syncconfig import schema as table_schema
from syncconfig import services, yaml_io
from syncconfig.admin import export_selected_as_yaml
from syncconfig.models import TableConfig
from syncengine.admin import INLINE_RUN_LIMIT, SyncRunInline, sync_now
from syncengine.reconciliation_admin import reconcile_now
from tests.syncconfig.conftest import SEED_YAML, table

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:syncconfig_tableconfig_changelist"
IMPORT = "admin:syncconfig_tableconfig_import"


def form_data(instance: TableConfig, **changes: Any) -> dict[str, str]:
    """The change form as a browser would post it for `instance`, with `changes` applied."""
    data: dict[str, Any] = {}
    for field in (
        "name",
        "snowflake_database",
        "snowflake_schema",
        "snowflake_table",
        "postgres_schema",
        "postgres_table",
        "sync_mode",
        "incremental_column",
        "schedule",
        "encryption_mode",
        "compression_mode",
        "schema_drift",
        "batch_size",
        "deletes_mode",
        "deletes_max_ratio",
        "reconcile_schedule",
        "notes",
    ):
        data[field] = str(getattr(instance, field))
    for field in (
        "primary_key",
        "include_columns",
        "exclude_columns",
        "encrypted_columns",
        "searchable_columns",
        "compressed_columns",
    ):
        data[field] = "\n".join(getattr(instance, field))
    data["column_names"] = json.dumps(instance.column_names)
    data["clear_columns"] = json.dumps(instance.clear_columns)
    data["max_staleness_minutes"] = (
        "" if instance.max_staleness_minutes is None else str(instance.max_staleness_minutes)
    )
    data["parallel_slices"] = "" if instance.parallel_slices is None else str(instance.parallel_slices)
    for flag in ("enabled", "keep_history", "lineage"):
        if getattr(instance, flag):
            data[flag] = "on"
    # The page carries the read-only inline of latest runs; a browser posts its management form.
    shown_runs = min(instance.runs.count(), INLINE_RUN_LIMIT) if instance.pk else 0
    data.update(
        {
            "runs-TOTAL_FORMS": str(shown_runs),
            "runs-INITIAL_FORMS": str(shown_runs),
            "runs-MIN_NUM_FORMS": "0",
            "runs-MAX_NUM_FORMS": "0",
        }
    )
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


@pytest.fixture
def transactions(config_dir) -> TableConfig:
    services.tables_import(document={"tables": [table("transactions")]})
    return TableConfig.objects.get(name="transactions")


def change_url(instance: TableConfig) -> str:
    return reverse("admin:syncconfig_tableconfig_change", args=[instance.pk])


def test_the_list_shows_filters_search_and_the_import_link(admin_client, transactions):
    services.tables_import(document={"tables": [table("fx_rates", schedule="0 6 * * *")]})
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    content = response.content.decode()
    assert "PROD_DB.FINANCE.TRANSACTIONS" in content and "finance.transactions" in content
    assert reverse(IMPORT) in content and "Export selected as YAML" in content
    cron_only = admin_client.get(reverse(CHANGELIST), {"schedule_kind": "cron"})
    assert [t.name for t in cron_only.context["cl"].result_list] == ["fx_rates"]
    hourly = admin_client.get(reverse(CHANGELIST), {"schedule_kind": "hourly"})
    assert [t.name for t in hourly.context["cl"].result_list] == ["transactions"]
    found = admin_client.get(reverse(CHANGELIST), {"q": "FX_RATES"})
    assert [t.name for t in found.context["cl"].result_list] == ["fx_rates"]


def test_an_admin_edit_is_audited_with_the_user_and_the_change(admin_client, admin_user, transactions):
    response = admin_client.post(change_url(transactions), form_data(transactions, schedule="daily"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    latest = TableConfig.objects.get(name="transactions").history.latest()
    assert (latest.history_type, latest.history_user, latest.history_change_reason) == (
        "~",
        admin_user,
        "admin edit",
    )
    assert [(c.field, c.old, c.new) for c in latest.diff_against(latest.prev_record).changes] == [
        ("schedule", "hourly", "daily")
    ]


def test_a_schedule_word_in_capitals_is_saved_as_the_word(admin_client, transactions):
    response = admin_client.post(change_url(transactions), form_data(transactions, schedule="Daily"))

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert TableConfig.objects.get(name="transactions").schedule == "daily"


def test_an_admin_add_is_audited(admin_client, admin_user, config_dir):
    template = TableConfig(
        **table_schema.model_fields_from_table(table_schema.validate_table(table("gl_entries")).table)
    )
    response = admin_client.post(reverse("admin:syncconfig_tableconfig_add"), form_data(template))
    assert response.status_code == 302, response.context["adminform"].form.errors
    created = TableConfig.history.get(name="gl_entries")
    assert (created.history_type, created.history_user, created.history_change_reason) == (
        "+",
        admin_user,
        "admin add",
    )


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"schedule": "61 * * * *"}, "schedule", "invalid cron expression '61 * * * *'"),
        ({"incremental_column": ""}, "incremental_column", "is required when sync_mode is incremental"),
        (
            {"searchable_columns": "IBAN\nTAX_ID"},
            "searchable_columns",
            "encryption.searchable[1]: 'TAX_ID' is not encrypted; list it in encryption.columns too",
        ),
        (
            {"encrypted_columns": "IBAN\nTXN_ID"},
            "encrypted_columns",
            "encryption.columns[1]: 'TXN_ID' is part of the primary key, which cannot be encrypted",
        ),
        ({"name": "Transactions"}, "name", "must start with a lower-case letter"),
        ({"postgres_schema": "pg_temp"}, "postgres_schema", "'pg_temp' is reserved by PostgreSQL"),
        ({"include_columns": "TXN_ID", "exclude_columns": "X"}, "include_columns", "set include or exclude"),
        ({"column_names": '["a"]'}, "column_names", "must be a mapping, got a list"),
        (
            {"encryption_mode": "all"},
            "encrypted_columns",
            "List encrypted columns only when the encryption mode is 'columns'.",
        ),
    ],
)
def test_form_errors_come_from_the_shared_schema_on_the_right_field(
    admin_client, transactions, changes, field, message
):
    response = admin_client.post(change_url(transactions), form_data(transactions, **changes))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors, errors
    assert any(message in error for error in errors[field]), errors[field]
    assert TableConfig.objects.get(pk=transactions.pk).history.count() == 1


def test_a_target_taken_by_another_table_is_reported_on_the_target_field(admin_client, transactions):
    services.tables_import(document={"tables": [table("transactions"), table("fx_rates")]})
    fx = TableConfig.objects.get(name="fx_rates")
    response = admin_client.post(change_url(fx), form_data(fx, postgres_table="transactions"))
    assert response.context["adminform"].form.errors["postgres_table"] == [
        "finance.transactions is already the target of table 'transactions'."
    ]


def test_the_history_page_lists_changes(admin_client, transactions):
    admin_client.post(change_url(transactions), form_data(transactions, schedule="daily"))
    response = admin_client.get(reverse("admin:syncconfig_tableconfig_history", args=[transactions.pk]))
    assert response.status_code == 200
    content = response.content.decode()
    assert "admin edit" in content and "<strong>Schedule:</strong>" in content


def test_delete_selected_deletes_one_at_a_time_and_audits_each(admin_client, admin_user, transactions):
    services.tables_import(document={"tables": [table("transactions"), table("fx_rates")]})
    ids = [str(pk) for pk in TableConfig.objects.values_list("pk", flat=True)]
    response = admin_client.post(
        reverse(CHANGELIST), {"action": "delete_selected", "_selected_action": ids, "post": "yes"}
    )
    assert response.status_code == 302
    assert TableConfig.objects.count() == 0
    deleted = TableConfig.history.filter(history_type="-")
    assert sorted((h.name, h.history_user, h.history_change_reason) for h in deleted) == [
        ("fx_rates", admin_user, "admin delete"),
        ("transactions", admin_user, "admin delete"),
    ]


def test_export_selected_downloads_yaml_of_those_tables(admin_client, transactions):
    services.tables_import(document={"tables": [table("transactions"), table("fx_rates"), table("gl")]})
    ids = [
        str(pk)
        for pk in TableConfig.objects.filter(name__in=["gl", "transactions"]).values_list("pk", flat=True)
    ]
    response = admin_client.post(
        reverse(CHANGELIST), {"action": "export_selected_as_yaml", "_selected_action": ids}
    )
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="tables.yaml"'
    assert response["Content-Type"].startswith("application/yaml")
    exported = yaml_io.parse(response.content)
    assert [t["name"] for t in exported["tables"]] == ["gl", "transactions"]


def test_export_all_downloads_what_import_reads(admin_client, config_dir):
    services.tables_import(document=SEED_YAML)
    response = admin_client.get(reverse("admin:syncconfig_tableconfig_export"))
    assert yaml_io.parse(response.content) == yaml_io.parse(SEED_YAML)


def upload(client, text: str, *, prune: bool = False, name: str = "tables.yaml"):
    data: dict[str, Any] = {"file": SimpleUploadedFile(name, text.encode(), content_type="application/yaml")}
    if prune:
        data["prune"] = "on"
    return client.post(reverse(IMPORT), data)


def test_import_shows_a_preview_then_applies_on_confirm(admin_client, admin_user, config_dir):
    services.tables_import(document={"tables": [table("a"), table("old")]})
    text = yaml_io.dump_tables([table("a", schedule="daily"), table("b")])
    preview = upload(admin_client, text, prune=True)
    assert preview.status_code == 200
    content = preview.content.decode()
    assert "import-created" in content and "import-updated" in content and "import-deleted" in content
    assert "schedule: &quot;hourly&quot; -&gt; &quot;daily&quot;" in content
    assert sorted(TableConfig.objects.values_list("name", flat=True)) == ["a", "old"]  # nothing changed yet

    confirm = preview.context["confirm_form"].initial
    response = admin_client.post(reverse(IMPORT), {**confirm, "prune": "True", "confirm": "Confirm import"})
    assert response.status_code == 302 and response.url == reverse(CHANGELIST)
    assert sorted(TableConfig.objects.values_list("name", flat=True)) == ["a", "b"]
    latest = TableConfig.objects.get(name="a").history.latest()
    assert (latest.history_user, latest.history_change_reason) == (admin_user, "admin import tables.yaml")
    followed = admin_client.get(response.url)
    assert "1 created, 1 updated, 1 deleted" in followed.content.decode()


def test_import_lists_every_problem_and_offers_no_confirm(admin_client, config_dir):
    text = yaml_io.dump_tables([table("a"), table("b", sync_mode="sometimes", enabled="no")])
    response = upload(admin_client, text)
    assert [str(e) for e in response.context["errors"]] == [
        "tables[1] b.sync_mode: must be one of: full, incremental; got string 'sometimes'",
        "tables[1] b.enabled: must be true or false, got string 'no'",
    ]
    content = response.content.decode()
    assert "2 problems found; nothing will be changed" in content
    assert 'name="confirm"' not in content
    assert TableConfig.objects.count() == 0


def test_import_reports_yaml_syntax_errors(admin_client, config_dir):
    response = upload(admin_client, "tables:\n  - name: a\n    name: b\n", name="broken.yaml")
    assert [str(e) for e in response.context["errors"]] == [
        "broken.yaml: line 3, column 5: duplicate key 'name' (first given on line 2)"
    ]


def test_pasted_yaml_is_previewed_and_applied_like_a_file(admin_client, admin_user, config_dir):
    text = yaml_io.dump_tables([table("pasted")])
    preview = admin_client.post(reverse(IMPORT), {"text": text})
    assert preview.context["preview"].created == ["pasted"]

    response = admin_client.post(reverse(IMPORT), {**preview.context["confirm_form"].initial, "confirm": "1"})

    assert response.status_code == 302
    latest = TableConfig.objects.get(name="pasted").history.latest()
    assert latest.history_change_reason == "admin import pasted text"


def test_a_pasted_syntax_error_is_shown_with_an_excerpt(admin_client, config_dir):
    response = admin_client.post(reverse(IMPORT), {"text": "tables:\n  - name: a\n    sync_mode full\n"})

    content = response.content.decode()
    assert [str(e) for e in response.context["errors"]] == [
        "pasted text: line 3, column 5: this line has no ':' after its key (write key: value)"
    ]
    assert '<pre class="fdm-excerpt">2 |   - name: a\n3 |     sync_mode full\n  |     ^ here</pre>' in content


def test_the_import_form_wants_a_file_or_pasted_text_not_both_nor_neither(admin_client, config_dir):
    neither = admin_client.post(reverse(IMPORT), {"text": "  "})
    both = admin_client.post(
        reverse(IMPORT),
        {"text": "tables: []", "file": SimpleUploadedFile("t.yaml", b"tables: []")},
    )
    for response in (neither, both):
        assert "Choose a file or paste YAML (one of the two)." in response.content.decode()
    assert TableConfig.objects.count() == 0


def test_a_confirm_after_a_concurrent_change_shows_a_fresh_preview(admin_client, config_dir):
    services.tables_import(document={"tables": [table("a")]})
    preview = upload(admin_client, yaml_io.dump_tables([table("a", schedule="daily")]))
    services.tables_import(document={"tables": [table("a", schedule="manual")]})
    response = admin_client.post(reverse(IMPORT), {**preview.context["confirm_form"].initial, "confirm": "1"})
    assert response.status_code == 200
    assert [str(e) for e in response.context["errors"]] == [
        "the stored tables changed since the preview; review the new preview before applying it"
    ]
    assert TableConfig.objects.get(name="a").schedule == "manual"


def test_import_needs_change_permission(client, django_user_model, config_dir):
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(viewer)
    assert client.get(reverse(IMPORT)).status_code == 403


def test_the_table_admin_shows_runs_and_offers_sync_now_and_reconcile():
    table_admin = type(admin.site.get_model_admin(TableConfig))
    assert table_admin.inlines == [SyncRunInline]
    assert table_admin.actions == [export_selected_as_yaml, sync_now, reconcile_now]


def test_the_add_and_change_pages_render(admin_client, transactions):
    assert admin_client.get(reverse("admin:syncconfig_tableconfig_add")).status_code == 200
    page = admin_client.get(change_url(transactions))
    assert page.status_code == 200
    assert "ACCOUNT_NUMBER\nIBAN</textarea>" in page.content.decode()


def test_the_form_refuses_an_operator_who_turns_encryption_off(client, transactions):
    operator = get_user_model().objects.create_user("ops", is_staff=True)
    role_set(user=operator, role=Role.OPERATOR)  # may edit tables in the admin, not weaken their protection
    operator.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_tableconfig", "change_tableconfig"])
    )
    client.force_login(operator)
    off = form_data(transactions, encryption_mode="off", encrypted_columns="", searchable_columns="")
    response = client.post(change_url(transactions), off)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert (
        "turning encryption off weakens the protection of sensitive columns" in errors["encryption_mode"][0]
    )
    assert TableConfig.objects.get(pk=transactions.pk).encryption_mode == "columns"


def test_the_form_lets_an_admin_turn_encryption_off(admin_client, transactions):
    off = form_data(transactions, encryption_mode="off", encrypted_columns="", searchable_columns="")
    response = admin_client.post(change_url(transactions), off)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert TableConfig.objects.get(pk=transactions.pk).encryption_mode == "off"


def _staff(role: Role, *codenames: str):
    user = get_user_model().objects.create_user(f"staff-{role.label}", is_staff=True)
    role_set(user=user, role=role)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.mark.parametrize("caller", ["anonymous", "viewer", "operator", "admin"])
def test_each_caller_of_the_admin_meets_the_protection_rules(client, admin_user, transactions, caller):
    """The admin's two ways to weaken protection, the table form and the import page, for each kind of user."""
    edit = ("view_tableconfig", "change_tableconfig", "add_tableconfig", "delete_tableconfig")
    user = {
        "anonymous": None,
        "viewer": _staff(Role.VIEWER, "view_tableconfig"),
        "operator": _staff(Role.OPERATOR, *edit),
        "admin": admin_user,
    }[caller]
    if user is not None:
        client.force_login(user)
    off = form_data(transactions, encryption_mode="off", encrypted_columns="", searchable_columns="")
    form = client.post(change_url(transactions), off)
    clear_copy = yaml_io.dump_tables([table("transactions", encryption=False)])
    preview = upload(client, clear_copy)
    stored = TableConfig.objects.get(pk=transactions.pk).encryption_mode
    if caller == "anonymous":
        assert form.status_code == 302 and "/login/" in form["Location"] and stored == "columns"
        assert preview.status_code == 302
    elif caller == "viewer":
        assert form.status_code == 403 and preview.status_code == 403 and stored == "columns"
    elif caller == "operator":
        assert form.status_code == 200 and stored == "columns"  # the form again, with the error on the field
        assert any("needs the admin role" in str(error) for error in preview.context["errors"])
    else:
        assert form.status_code == 302 and stored == "off"
        assert preview.status_code == 200 and not preview.context["errors"]


@pytest.mark.parametrize("how", ["delete page", "bulk action"])
def test_an_operator_cannot_delete_an_encrypting_table_in_the_admin(client, transactions, how):
    """403, the table kept, never a 500 from the refused save; a table that encrypts nothing may go."""
    services.tables_import(document={"tables": [table("fx_rates", encryption=False)]})
    fx_rates = TableConfig.objects.get(name="fx_rates")
    client.force_login(
        _staff(
            Role.OPERATOR, "view_tableconfig", "change_tableconfig", "add_tableconfig", "delete_tableconfig"
        )
    )
    if how == "delete page":
        assert "/delete/" not in client.get(change_url(transactions)).content.decode()
        url = reverse("admin:syncconfig_tableconfig_delete", args=[transactions.pk])
        response = client.post(url, {"post": "yes"})
        allowed = client.post(
            reverse("admin:syncconfig_tableconfig_delete", args=[fx_rates.pk]), {"post": "yes"}
        )
    else:
        both = {
            "action": "delete_selected",
            "_selected_action": [transactions.pk, fx_rates.pk],
            "post": "yes",
        }
        response = client.post(reverse(CHANGELIST), both)
        allowed = client.post(reverse(CHANGELIST), {**both, "_selected_action": [fx_rates.pk]})
    assert response.status_code == 403
    assert set(TableConfig.objects.values_list("name", flat=True)) >= {"transactions"}
    assert allowed.status_code == 302 and not TableConfig.objects.filter(name="fx_rates").exists()


def test_an_admin_deletes_an_encrypting_table_in_the_admin(admin_client, transactions):
    url = reverse("admin:syncconfig_tableconfig_delete", args=[transactions.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not TableConfig.objects.filter(pk=transactions.pk).exists()
