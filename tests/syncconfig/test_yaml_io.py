"""Reading YAML narrowly, writing it stably, and merging environment overlays."""

from __future__ import annotations

import pytest
import yaml

from syncconfig import schema as table_schema
from syncconfig import yaml_io
from tests.syncconfig.conftest import SEED_YAML, table


def parse_error(text: str | bytes) -> str:
    with pytest.raises(yaml_io.YamlError) as caught:
        yaml_io.parse(text, source="tables.yaml")
    return str(caught.value)


def test_aliases_are_refused_with_their_position():
    text = "tables:\n  - &base {name: a}\n  - *base\n"
    assert parse_error(text) == (
        "tables.yaml: line 3, column 5: aliases (*base) are not accepted; write the value out in full"
    )


def test_an_alias_bomb_is_refused_before_it_expands():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}," + ",".join([f"*{chr(97 + i)}"] * 8) + "]"
        for i in range(8)
    ]
    assert "aliases (*a) are not accepted" in parse_error("\n".join(lines))


def test_duplicate_keys_are_refused():
    assert parse_error("tables:\n  - name: a\n    name: b\n") == (
        "tables.yaml: line 3, column 5: duplicate key 'name' (first given on line 2)"
    )


def test_syntax_errors_report_line_and_column():
    assert parse_error("tables:\n  - name: [a\n") == (
        "tables.yaml: line 3, column 1: expected ',' or ']', but got '<stream end>' (while parsing a flow "
        "sequence on line 2, column 11)"
    )


def test_a_syntax_error_comes_with_an_excerpt_pointing_at_the_mistake():
    text = "tables:\n  - name: a\n    snowflake: {database: X, schema: Y, table: Z\n    schedule: daily\n"
    with pytest.raises(yaml_io.YamlError) as caught:
        yaml_io.parse(text, source="tables.yaml")

    assert caught.value.excerpt == (
        "2 |   - name: a\n"
        "3 |     snowflake: {database: X, schema: Y, table: Z\n"
        "  |                ^ while parsing a flow mapping\n"
        "4 |     schedule: daily\n"
        "  |             ^ here"
    )


def test_a_key_without_its_colon_is_reported_on_its_own_line():
    text = "tables:\n  - name: a\n    sync_mode full\n    schedule: daily\n"
    with pytest.raises(yaml_io.YamlError) as caught:
        yaml_io.parse(text, source="tables.yaml")

    assert str(caught.value) == (
        "tables.yaml: line 3, column 5: this line has no ':' after its key (write key: value)"
    )
    assert caught.value.excerpt == "2 |   - name: a\n3 |     sync_mode full\n  |     ^ here"


def test_oversized_documents_are_refused(tmp_path):
    big = "# " + "x" * yaml_io.MAX_DOCUMENT_BYTES + "\n"
    assert parse_error(big) == f"tables.yaml: is {len(big)} bytes; the limit is 1048576 bytes"
    path = tmp_path / "big.yaml"
    path.write_text(big)
    with pytest.raises(yaml_io.YamlError, match="the limit is 1048576 bytes"):
        yaml_io.read_file(path)


def test_non_utf8_text_is_refused():
    assert parse_error(b"tables: [\xff]") == "tables.yaml: is not UTF-8 text (byte 9)"


def test_scalars_follow_yaml_1_2():
    parsed = yaml_io.parse(
        "a: yes\nb: off\nc: true\nd: 010\ne: 12:30\nf: 2024-01-31\ng: 0x1F\nh: ~\ni: 1e3\n"
    )
    assert parsed == {
        "a": "yes",
        "b": "off",
        "c": True,
        "d": 10,
        "e": "12:30",
        "f": "2024-01-31",
        "g": 31,
        "h": None,
        "i": 1000.0,
    }


def test_yes_is_reported_as_a_string_not_read_as_true():
    text = SEED_YAML.replace("compression: false", "compression: false\n    enabled: yes")
    errors = table_schema.validate_document(yaml_io.parse(text)).errors
    assert [str(e) for e in errors] == [
        "tables[1] market_data.enabled: must be true or false, got string 'yes'"
    ]


def test_export_quotes_strings_any_yaml_reader_could_mistake():
    tricky = [
        "yes",
        "NO",
        "on",
        "010",
        "0o17",
        "12:30",
        "2024-01-31",
        "null",
        "1e3",
        "true",
        "*x",
        "- a",
        "#c",
    ]
    text = yaml_io.dump_tables([{"name": "t", "primary_key": tricky}])
    assert yaml_io.parse(text)["tables"][0]["primary_key"] == tricky
    # A YAML 1.1 reader (plain PyYAML) reads the same strings back too.
    assert yaml.safe_load(text)["tables"][0]["primary_key"] == tricky


def test_export_writes_the_seed_format():
    tables = table_schema.validate_document(yaml_io.parse(SEED_YAML)).tables
    text = yaml_io.dump_tables([table_schema.table_to_dict(t) for t in tables])
    assert text == (
        "# fdm table configuration. Keys and defaults: docs/table-configuration.md\n"
        "tables:\n"
        "  - name: financial_data\n"
        "    snowflake: {database: PROD_DB, schema: PUBLIC, table: FINANCIAL_DATA}\n"
        "    postgres: {schema: public, table: financial_data}\n"
        "    sync_mode: full\n"
        "    schedule: daily\n"
        "    encryption: true\n"
        "    compression: true\n"
        "\n"
        "  - name: market_data\n"
        "    snowflake: {database: PROD_DB, schema: PUBLIC, table: MARKET_DATA}\n"
        "    postgres: {schema: public, table: market_data}\n"
        "    sync_mode: incremental\n"
        "    incremental_column: updated_at\n"
        "    schedule: hourly\n"
        "    encryption: true\n"
        "    compression: false\n"
    )


def test_multi_line_notes_are_written_as_a_block():
    text = yaml_io.dump_tables([{"name": "t", "notes": "first line\nsecond line\n"}])
    assert "    notes: |\n      first line\n      second line\n" in text
    assert yaml_io.parse(text)["tables"][0]["notes"] == "first line\nsecond line\n"


@pytest.mark.parametrize("notes", ["\n", "line\n\n", "\n\n\n", "a\n \n\n"])
def test_notes_ending_in_blank_lines_survive_the_export_between_other_tables(notes):
    tables = [
        {"name": "first", "enabled": True, "notes": notes},
        {"name": "second", "enabled": True, "notes": notes},
    ]
    text = yaml_io.dump_tables(tables)
    assert [table["notes"] for table in yaml_io.parse(text)["tables"]] == [notes, notes]


def test_an_empty_configuration_exports_as_an_empty_list():
    assert yaml_io.parse(yaml_io.dump_tables([])) == {"tables": []}


# --- overlays ---


def test_merge_patch_merges_mappings_removes_nulls_and_replaces_the_rest():
    base = {"snowflake": {"database": "PROD_DB", "schema": "S"}, "primary_key": ["A", "B"], "batch_size": 5}
    patch = {"snowflake": {"database": "DEV_DB"}, "primary_key": ["C"], "batch_size": None, "enabled": False}
    assert yaml_io.merge_patch(base, patch) == {
        "snowflake": {"database": "DEV_DB", "schema": "S"},
        "primary_key": ["C"],
        "enabled": False,
    }


def test_an_overlay_applies_defaults_then_the_tables_own_entry():
    document = {"tables": [table("a"), table("b")]}
    overlay = {
        "defaults": {"snowflake": {"database": "DEV_DB"}, "schedule": "manual"},
        "tables": [{"name": "b", "schedule": "daily", "encryption": False}],
    }
    merged, errors = yaml_io.apply_overlay(document, overlay, source="environments/dev.yaml")
    assert errors == []
    a, b = merged["tables"]
    assert a["snowflake"] == {"database": "DEV_DB", "schema": "FINANCE", "table": "A"}
    assert a["schedule"] == "manual" and a["encryption"] == table()["encryption"]
    assert b["schedule"] == "daily" and b["encryption"] is False
    assert document["tables"][0]["schedule"] == "hourly"  # the base document is left as it was


def test_an_overlay_can_replace_encryption_true_with_a_column_list():
    document = {"tables": [table("a", encryption=True)]}
    overlay = {"tables": [{"name": "a", "encryption": {"columns": ["IBAN"]}}]}
    merged, _ = yaml_io.apply_overlay(document, overlay, source="environments/prod.yaml")
    assert merged["tables"][0]["encryption"] == {"columns": ["IBAN"]}


def test_applying_an_overlay_twice_equals_applying_it_once():
    document = {"tables": [table("a")]}
    overlay = {"defaults": {"schedule": "manual", "incremental_column": None, "sync_mode": "full"}}
    once, _ = yaml_io.apply_overlay(document, overlay, source="o")
    twice, _ = yaml_io.apply_overlay(once, overlay, source="o")
    assert once == twice


@pytest.mark.parametrize(
    ("overlay", "expected"),
    [
        (
            {"tables": [{"name": "ghost", "enabled": False}]},
            "environments/dev.yaml: tables[0] ghost.name: no table named 'ghost' in the configuration",
        ),
        (
            {"tables": [{"name": "a"}, {"name": "a"}]},
            "environments/dev.yaml: tables[1] a.name: 'a' appears more than once",
        ),
        (
            {"tables": [{"enabled": False}]},
            "environments/dev.yaml: tables[0].name: must be a string, got null",
        ),
        ({"defaults": {"name": "x"}}, "environments/dev.yaml: defaults.name: a name cannot have a default"),
        ({"defaults": ["x"]}, "environments/dev.yaml: defaults: must be a mapping, got a list"),
        (
            {"tabels": []},
            "environments/dev.yaml: tabels: unknown key; did you mean 'tables'?; allowed keys: defaults, tables, pipeline",
        ),
        (["x"], "environments/dev.yaml: must be a mapping with defaults and/or tables, got a list"),
    ],
)
def test_overlay_mistakes_are_reported(overlay, expected):
    _, errors = yaml_io.apply_overlay({"tables": [table("a")]}, overlay, source="environments/dev.yaml")
    assert [str(e) for e in errors] == [expected]


def test_an_unknown_environment_is_an_error(config_dir):
    with pytest.raises(yaml_io.YamlError, match="no overlay for environment 'qa'"):
        yaml_io.load_overlay("qa", config_dir)
    with pytest.raises(yaml_io.YamlError, match="environment name '../etc' must be"):
        yaml_io.load_overlay("../etc", config_dir)


def test_the_shipped_configuration_is_valid_in_every_environment(settings):
    base = yaml_io.read_file(settings.BASE_DIR / "config" / "tables.yaml")
    assert table_schema.validate_document(base).errors == []
    for env in ("dev", "staging", "prod"):
        overlay, label = yaml_io.load_overlay(env, settings.BASE_DIR / "config")
        merged, errors = yaml_io.apply_overlay(base, overlay, source=label)
        assert errors == []
        assert table_schema.validate_document(merged).errors == [], env
