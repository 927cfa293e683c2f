"""The pipeline's settings: config/pipeline.yaml, the environment's overlay, then variables; each value with
where it came from, and a clear error for a bad one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fdm import pipeline_settings
from fdm.env import ConfigurationError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def config_dir(tmp_path) -> Path:
    (tmp_path / "environments").mkdir()
    return tmp_path


def test_without_a_file_every_setting_has_its_default(config_dir):
    loaded = pipeline_settings.load(config_dir, env_name=None, environ={})

    assert dict(loaded) == {setting.name: setting.default for setting in pipeline_settings.SETTINGS}
    assert {resolved.source for resolved in loaded.resolved.values()} == {"default"}


def test_the_file_then_the_environment_overlay_then_a_variable_win_in_turn(config_dir):
    (config_dir / "pipeline.yaml").write_text(
        "pipeline:\n  copy_streams: 3\n  max_attempts: 5\n  workers: 4\n"
    )
    (config_dir / "environments" / "prod.yaml").write_text(
        "tables: []\npipeline:\n  copy_streams: 6\n  max_attempts: 7\n"
    )

    loaded = pipeline_settings.load(config_dir, env_name="prod", environ={"FDM_COPY_STREAMS": "8"})

    assert (loaded["copy_streams"], loaded["max_attempts"], loaded["workers"]) == (8, 7, 4)
    sources = {name: resolved.source for name, resolved in loaded.resolved.items()}
    assert sources["copy_streams"] == "FDM_COPY_STREAMS"
    assert sources["max_attempts"] == str(config_dir / "environments" / "prod.yaml")
    assert sources["workers"] == str(config_dir / "pipeline.yaml")
    assert sources["run_log_limit"] == "default"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "pipeline:\n  copy_stream: 3\n",
            "pipeline.yaml: pipeline.copy_stream: unknown setting; known settings: ",
        ),
        (
            "pipeline:\n  copy_streams: two\n",
            "pipeline.yaml: pipeline.copy_streams: expected a whole number, got 'two'",
        ),
        ("pipeline:\n  copy_streams: 0\n", "pipeline.yaml: pipeline.copy_streams: must be at least 1, got 0"),
        (
            "pipeline:\n  workers: true\n",
            "pipeline.yaml: pipeline.workers: expected a whole number, got True",
        ),
        ("pipeline: [1, 2]\n", "pipeline.yaml: pipeline: must be a mapping of settings"),
        ("pipeline:\n  workers: 2\n  workers: 3\n", "pipeline.yaml: cannot be read as YAML: "),
    ],
)
def test_a_bad_file_is_refused_naming_the_file_and_the_key(config_dir, text, message):
    (config_dir / "pipeline.yaml").write_text(text)

    with pytest.raises(ConfigurationError) as raised:
        pipeline_settings.load(config_dir, env_name=None, environ={})

    assert message in str(raised.value)
    assert str(raised.value).startswith(str(config_dir))


def test_a_bad_variable_is_refused_naming_the_variable(config_dir):
    with pytest.raises(ConfigurationError, match="FDM_SYNC_TIMEOUT: must be at least 60, got 5"):
        pipeline_settings.load(config_dir, env_name=None, environ={"FDM_SYNC_TIMEOUT": "5"})


def test_the_shipped_file_lists_every_setting_at_its_default():
    loaded = pipeline_settings.load(ROOT / "config", env_name=None, environ={})

    assert {name for name, resolved in loaded.resolved.items() if resolved.source == "default"} == set()
    assert dict(loaded) == {setting.name: setting.default for setting in pipeline_settings.SETTINGS}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "FDM_HTTPS": "false", **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_show_settings_prints_each_value_with_where_it_came_from_and_no_secret():
    shown = manage(
        "show_settings",
        FDM_ENV="prod",
        FDM_COPY_STREAMS="4",
        SNOWFLAKE_PASSWORD="hunter2-secret",
        DATABASE_URL=os.environ["DATABASE_URL"].replace("postgres@", "postgres:pw-secret@"),
    )

    assert shown.returncode == 0, shown.stderr
    lines = {line.split()[0]: line.split() for line in shown.stdout.splitlines() if line.strip()}
    assert lines["copy_streams"][1:3] == ["4", "FDM_COPY_STREAMS"]
    assert lines["run_retention_days"][1:3] == ["400", str(ROOT / "config" / "environments" / "prod.yaml")]
    assert lines["max_attempts"][2] == str(ROOT / "config" / "pipeline.yaml")
    assert "hunter2-secret" not in shown.stdout and "pw-secret" not in shown.stdout


def test_a_process_with_a_bad_setting_stops_with_one_line_naming_it():
    refused = manage("check", FDM_WORKERS="many")

    assert refused.returncode == 1
    assert refused.stderr.strip() == "fdm: FDM_WORKERS: expected a whole number, got 'many'"
