"""Local state (a kept secret key, the embedded PostgreSQL) is created by the commands that run fdm locally,
never by importing the settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.apps import apps
from django.core.management import get_commands

from fdm.local_state import (
    SECRET_KEY_FILE,
    embedded_database_url,
    ensure_secret_key,
    read_secret_key,
    running_embedded_database_url,
)

ROOT = Path(__file__).resolve().parent.parent

SETTINGS_PROBE = """
import json, sys
import django
from django.conf import settings
django.setup()
print(json.dumps({
    "secret_key": settings.SECRET_KEY,
    "database_url": settings.DATABASE_URL,
    "embedded": settings.EMBEDDED_DATABASE,
    "pgserver_imported": "pgserver" in sys.modules,
}))
"""


def _local_env(state_dir: Path) -> dict[str, str]:
    """This environment on embedded defaults: no DATABASE_URL, no SECRET_KEY, state under `state_dir`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_URL", "SECRET_KEY", "TARGET_DATABASE_URL"))
    }
    env.update(FDM_STATE_DIR=str(state_dir), DJANGO_SETTINGS_MODULE="fdm.settings", PYTHONPATH=str(ROOT))
    return env


def _probe_settings(state_dir: Path) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", SETTINGS_PROBE],
        cwd=ROOT,
        env=_local_env(state_dir),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.splitlines()[-1])


def test_importing_settings_writes_no_file_and_starts_no_database(tmp_path):
    state_dir = tmp_path / "state"

    probed = _probe_settings(state_dir)

    assert not state_dir.exists()  # no secret key file, no pgdata
    assert probed["embedded"] is True
    assert probed["pgserver_imported"] is False  # the embedded PostgreSQL was not started
    assert probed["database_url"] == embedded_database_url(state_dir / "pgdata")
    assert len(probed["secret_key"]) >= 50  # a random key for this process only


def test_settings_read_the_key_that_local_runs_keep(tmp_path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / SECRET_KEY_FILE).write_text("kept-key-" + "x" * 50)

    assert _probe_settings(state_dir)["secret_key"] == "kept-key-" + "x" * 50


def test_ensure_secret_key_writes_a_private_file_once_and_reuses_it(tmp_path, monkeypatch, settings):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("SECRET_KEY_FILE", raising=False)
    state_dir = tmp_path / "state"

    first = ensure_secret_key(state_dir)
    key_file = state_dir / SECRET_KEY_FILE
    written = key_file.stat()
    second = ensure_secret_key(state_dir)

    assert first == second == read_secret_key(state_dir)
    assert len(first) >= 50
    assert written.st_mode & 0o777 == 0o600
    assert key_file.stat().st_mtime_ns == written.st_mtime_ns  # not written again
    assert settings.SECRET_KEY == first  # this process signs with the kept key from now on


def test_ensure_secret_key_keeps_no_file_when_secret_key_is_set(tmp_path, monkeypatch, settings):
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")

    assert ensure_secret_key(tmp_path / "state") == "from-the-environment"
    assert not (tmp_path / "state").exists()


def _postmaster_pid(pgdata: Path, pid: int, socket_dir: str) -> None:
    pgdata.mkdir(parents=True)
    lines = [str(pid), str(pgdata), "1764739000", "5432", socket_dir, "", "  0  0", "ready"]
    (pgdata / "postmaster.pid").write_text("\n".join(lines) + "\n")


def test_a_running_embedded_database_is_found_through_its_postmaster_pid(tmp_path):
    pgdata = tmp_path / "pgdata"
    _postmaster_pid(pgdata, os.getpid(), str(tmp_path / "sockets"))

    assert (
        running_embedded_database_url(pgdata)
        == f"postgresql://postgres:@/postgres?host={tmp_path / 'sockets'}"
    )


def test_a_stopped_embedded_database_is_not_found(tmp_path):
    assert running_embedded_database_url(tmp_path / "never-started") is None
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    _postmaster_pid(tmp_path / "pgdata", int(finished.stdout), str(tmp_path / "pgdata"))

    assert running_embedded_database_url(tmp_path / "pgdata") is None  # a stale postmaster.pid


def test_a_command_that_needs_the_stopped_embedded_database_says_how_to_start_it(tmp_path):
    completed = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=_local_env(tmp_path / "state"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    [line] = completed.stderr.strip().splitlines()
    assert "embedded PostgreSQL" in line and "make demo" in line and "manage.py runserver" in line
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("name", ["runserver", "demo", "benchmark"])
def test_the_commands_that_run_fdm_locally_belong_to_the_project_package(name):
    assert get_commands()[name] == "fdm"


def test_the_project_app_has_no_models():
    assert list(apps.get_app_config("fdm").get_models()) == []
