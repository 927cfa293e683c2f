"""The hashed locks are in step with pyproject.toml, and the runtime lock carries no demo or test tool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.tools import find_tool

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ("requirements.txt", "requirements-demo.txt", "requirements-dev.txt")
# Packages the image must not hold: the emulator, the embedded PostgreSQL and the test tools.
NOT_AT_RUN_TIME = {"fakesnow", "pgserver", "pytest", "hypothesis", "selenium", "mypy", "ruff", "schemathesis"}
OFFLINE = re.compile(
    r"(dns error|failed to connect|connection refused|network is unreachable|timed out)", re.I
)


def locked(name: str) -> dict[str, str]:
    """Package name -> pinned version of one lock."""
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", (ROOT / name).read_text(), re.M)
    return {package.lower().replace("_", "-"): version for package, version in pins}


def test_every_locked_package_carries_hashes():
    for name in LOCKS:
        text = (ROOT / name).read_text()
        entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
        assert entries
        for entry in entries:
            assert "--hash=sha256:" in entry, (name, entry.splitlines()[0])


def test_the_runtime_lock_holds_no_demo_or_test_dependency():
    runtime, dev = locked("requirements.txt"), locked("requirements-dev.txt")

    assert not NOT_AT_RUN_TIME & set(runtime)
    assert {"fakesnow", "pgserver", "pytest"} <= set(dev)
    assert {"django", "gunicorn", "django-q2", "redis"} <= set(runtime)
    # The development lock installs the very versions the image runs.
    assert {package: dev[package] for package in runtime} == runtime


def test_the_demo_lock_adds_the_emulator_and_embedded_postgresql_and_no_test_tool():
    runtime, demo, dev = (
        locked("requirements.txt"),
        locked("requirements-demo.txt"),
        locked("requirements-dev.txt"),
    )

    assert {"fakesnow", "pgserver"} <= set(demo)
    assert not {"pytest", "hypothesis", "selenium", "mypy", "ruff", "schemathesis"} & set(demo)
    assert {package: demo[package] for package in runtime} == runtime
    assert {package: dev[package] for package in demo} == demo  # a test .venv serves the demo as it is


def test_the_locks_are_in_step_with_pyproject(tmp_path):
    """`make lock` into a copy of the locks changes nothing: every pin of pyproject.toml is locked as written."""
    uv = find_tool("uv")
    if uv is None:
        pytest.skip("uv is not installed (the dev extra installs it)")
    for name in LOCKS:
        shutil.copy(ROOT / name, tmp_path / name)
    done = subprocess.run(
        ["make", "-s", "lock", f"UV={uv}", f"LOCK_DIR={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0 and OFFLINE.search(done.stderr):
        pytest.skip(f"the package index is unreachable: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr
    for name in LOCKS:
        assert (tmp_path / name).read_text() == (ROOT / name).read_text(), (
            f"{name} is out of step: run make lock"
        )
