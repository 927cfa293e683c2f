"""import_tables and export_tables: exit codes, one line per problem, dry-run output."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import ManagementUtility, call_command
from django.core.management.base import CommandError

from syncconfig import services, yaml_io
from syncconfig.models import TableConfig
from tests.syncconfig.conftest import SEED_YAML, table

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def write(path: Path, document: dict | str) -> str:
    path.write_text(document if isinstance(document, str) else yaml_io.dump_tables(document["tables"]))
    return str(path)


def test_import_creates_tables_and_says_so(tmp_path, config_dir):
    out, _ = run("import_tables", write(tmp_path / "seed.yaml", SEED_YAML))
    assert out.splitlines() == [
        f"Imported {tmp_path / 'seed.yaml'}: 2 created, 0 updated, 0 deleted, 0 unchanged.",
        "  + created financial_data",
        "  + created market_data",
    ]
    history = TableConfig.history.get(name="market_data")
    assert history.history_change_reason == f"import_tables {tmp_path / 'seed.yaml'}"


def test_problems_exit_non_zero_with_one_line_each(tmp_path, config_dir):
    path = write(
        tmp_path / "bad.yaml",
        {"tables": [table("a"), table("b"), table("market_data", sync_mode="daily", enabled="yes")]},
    )
    err = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("import_tables", path, stdout=StringIO(), stderr=err)
    assert err.getvalue().splitlines() == [
        "tables[2] market_data.sync_mode: must be one of: full, incremental; got string 'daily'",
        "tables[2] market_data.enabled: must be true or false, got string 'yes'",
    ]
    assert str(caught.value) == f"2 problems in {path}; nothing was changed"
    assert caught.value.returncode == 1
    assert TableConfig.objects.count() == 0


def test_dry_run_prints_created_updated_with_fields_and_deleted(tmp_path, config_dir):
    services.tables_import(document={"tables": [table("a"), table("b")]})
    path = write(tmp_path / "t.yaml", {"tables": [table("a", schedule="daily", batch_size=5000), table("c")]})
    out, _ = run("import_tables", path, "--dry-run", "--prune")
    assert out.splitlines() == [
        f"Dry run of {path}: 1 created, 1 updated, 1 deleted, 0 unchanged; nothing was changed.",
        "  + would create c",
        '  ~ would update a: schedule: "hourly" -> "daily"; batch_size: 100000 -> 5000',
        "  - would delete b",
    ]
    assert sorted(TableConfig.objects.values_list("name", flat=True)) == ["a", "b"]


def test_prune_deletes_and_reports(tmp_path, config_dir):
    services.tables_import(document={"tables": [table("a"), table("b")]})
    out, _ = run("import_tables", write(tmp_path / "t.yaml", {"tables": [table("a")]}), "--prune")
    assert out.splitlines()[1:] == ["  - deleted b"]
    assert list(TableConfig.objects.values_list("name", flat=True)) == ["a"]


def test_env_option_and_fdm_env_setting_pick_the_overlay(tmp_path, config_dir, settings):
    (config_dir / "environments" / "dev.yaml").write_text("defaults:\n  schedule: manual\n")
    (config_dir / "environments" / "prod.yaml").write_text("defaults:\n  schedule: daily\n")
    path = write(tmp_path / "t.yaml", {"tables": [table("a")]})
    out, _ = run("import_tables", path, "--env", "dev")
    assert out.startswith(f"Imported {path} with environment dev: 1 created")
    assert TableConfig.objects.get().schedule == "manual"
    settings.FDM_ENV = "prod"
    run("import_tables", path)
    assert TableConfig.objects.get().schedule == "daily"


def test_a_missing_environment_is_one_clear_line(tmp_path, config_dir):
    path = write(tmp_path / "t.yaml", {"tables": [table("a")]})
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("import_tables", path, "--env", "qa", stdout=StringIO(), stderr=err)
    assert err.getvalue().splitlines() == [
        f"no overlay for environment 'qa': {config_dir / 'environments' / 'qa.yaml'} does not exist"
    ]


def test_unreadable_yaml_fails_with_its_position(tmp_path, config_dir):
    path = write(tmp_path / "t.yaml", "tables:\n  - name: a\n    name: b\n")
    with pytest.raises(CommandError, match=r"t.yaml: line 3, column 5: duplicate key 'name'"):
        run("import_tables", path)
    with pytest.raises(CommandError, match=r"missing.yaml: cannot be read: No such file or directory"):
        run("import_tables", str(tmp_path / "missing.yaml"))


def test_export_writes_to_stdout_and_the_output_imports_as_a_no_op(tmp_path, config_dir):
    services.tables_import(document=SEED_YAML)
    out, _ = run("export_tables")
    assert yaml_io.parse(out) == yaml_io.parse(SEED_YAML)
    again, _ = run("import_tables", write(tmp_path / "exported.yaml", out))
    assert "0 created, 0 updated, 0 deleted, 2 unchanged" in again


def test_export_to_a_file(tmp_path, config_dir):
    services.tables_import(document={"tables": [table("a"), table("b")]})
    target = tmp_path / "out.yaml"
    out, _ = run("export_tables", str(target))
    assert out.strip() == f"Wrote 2 tables to {target}"
    assert target.read_text() == services.tables_export()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "environments",
        "out.yaml",
    ]  # no temporary file left


def test_export_of_selected_tables_and_of_an_unknown_one(config_dir):
    services.tables_import(document={"tables": [table("a"), table("b")]})
    out, _ = run("export_tables", "--table", "b")
    assert [t["name"] for t in yaml_io.parse(out)["tables"]] == ["b"]
    with pytest.raises(CommandError, match="no table named 'zz'"):
        run("export_tables", "--table", "zz")


def help_text(command: str, capsys) -> str:
    with pytest.raises(SystemExit) as exited:
        ManagementUtility(["manage.py", command, "--help"]).execute()
    assert exited.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_help_describes_every_option(capsys):
    text = help_text("import_tables", capsys)
    for expected in ("PATH", "--env ENV", "--dry-run", "--prune", "nothing changes", "FDM_ENV"):
        assert expected in text
    assert "standard output when PATH is omitted" in help_text("export_tables", capsys)
