"""Logs as an operator reads them: JSON lines with FDM_LOG_FORMAT=json, one request line per API and admin
request (who asked, never the key or a filter's value), worker lines bound to the run, no secrets anywhere."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from fdm.log import LogContextFilter, json_formatter
from syncengine import services, tasks
from syncengine.choices import RunStatus, RunTrigger
from syncengine.pipeline.protection.keyring import Keyring
from syncengine.redaction import RedactingFilter

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def json_log() -> Iterator[Callable[[], list[dict]]]:
    """The root logger also writes to a buffer through the handler set-up of FDM_LOG_FORMAT=json (formatter and
    filters as in settings.LOGGING); the fixture parses what was written, one JSON object per line."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(json_formatter())
    handler.addFilter(LogContextFilter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


@pytest.fixture
def synced(make_table, seed_source, monkeypatch):
    monkeypatch.setenv("FDM_ENCRYPTION_KEYS", Keyring.generate("logs").format())
    table = make_table(
        primary_key=["TXN_ID"],
        encryption_mode="columns",
        encrypted_columns=["CURRENCY"],
        searchable_columns=["CURRENCY"],
    )
    seed_source(table.snowflake_table, rows=5)
    return table


def request_lines(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line["logger"] == "fdm.request"]


def test_an_api_request_is_logged_once_with_the_key_name_and_without_the_filter_value(
    synced, api_key, json_log, client_for
):
    assert services.run_execute(
        run_id=services.run_create(table=synced, trigger=RunTrigger.COMMAND).pk
    ).status == (RunStatus.SUCCEEDED)
    from rest_framework.test import APIClient

    from fdm.api.roles import Role
    from fdm.apikeys.services import service_key_create

    _, key = service_key_create(username="reporting", role=Role.parse("admin"), key_name="month-end report")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    # fdm refuses an encrypted column's filter in a URL (400); the request is logged all the same, without it.
    response = client.get(f"/api/v1/data/{synced.name}/", {"currency": "EUR", "page_size": 2})
    assert response.status_code == 400

    lines = json_log()
    [line] = request_lines(lines)
    assert line["method"] == "GET"
    assert line["path"] == f"/api/v1/data/{synced.name}/"
    assert line["status"] == 400
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] > 0
    assert (line["user"], line["key_name"]) == ("reporting", "month-end report")
    assert line["message"].endswith("key month-end report")
    assert line["query_params"] == ["currency", "page_size"]
    assert line["level"] == "INFO" and line["time"].endswith("+00:00")
    written = json.dumps(lines)
    assert key not in written and key[:12] not in written
    assert "EUR" not in written  # the value of a filter on an encrypted column


def test_admin_requests_name_the_user_and_anonymous_refusals_are_logged(admin_user, client, json_log):
    client.force_login(admin_user)
    assert client.get("/admin/").status_code == 200
    client.logout()
    assert client.get("/api/v1/tables/").status_code == 401
    assert client.get("/health/live").status_code == 200  # probes are not request-logged
    admin_line, refused = request_lines(json_log())
    assert (admin_line["path"], admin_line["status"], admin_line["user"]) == (
        "/admin/",
        200,
        admin_user.username,
    )
    assert (refused["path"], refused["status"]) == ("/api/v1/tables/", 401)
    assert "user" not in refused and "key_name" not in refused
    assert refused["message"].endswith("anonymous")


def test_a_workers_lines_carry_the_run_and_the_table(synced, json_log):
    run = services.run_create(table=synced, trigger=RunTrigger.API)
    assert tasks.execute_run(run.pk) == RunStatus.SUCCEEDED
    run_lines = [line for line in json_log() if line["logger"] == "syncengine.runs"]
    assert len(run_lines) >= 3
    assert {(line["run_id"], line["table"]) for line in run_lines} == {(run.pk, synced.name)}


def test_json_logs_from_a_real_process_are_one_object_per_line_without_secrets(tmp_path):
    script = (
        "import django, logging; django.setup()\n"
        "from fdm.log import log_context\n"
        "with log_context(run_id=7, table='payments'):\n"
        "    logging.getLogger('syncengine.runs').info('connecting to %s', 'postgresql://fdm:hunter2@db/fdm')\n"
        "    try:\n"
        "        raise RuntimeError('login failed: password=hunter2')\n"
        "    except RuntimeError:\n"
        "        logging.getLogger('syncengine.runs').exception('run failed')\n"
    )
    env = {
        **os.environ,
        "FDM_LOG_FORMAT": "json",
        "DJANGO_SETTINGS_MODULE": "fdm.settings",
        "PYTHONPATH": str(ROOT),
        "SECRET_KEY": django_settings.SECRET_KEY,
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [line["message"] for line in lines] == [
        "connecting to postgresql://fdm:[redacted]@db/fdm",
        "run failed",
    ]
    assert all(
        (line["run_id"], line["table"], line["logger"]) == (7, "payments", "syncengine.runs")
        for line in lines
    )
    assert "RuntimeError: login failed: password=[redacted]" in lines[1]["exc_info"]
    assert "hunter2" not in done.stderr


def test_the_text_format_is_the_default_and_carries_the_bound_fields(tmp_path):
    script = (
        "import django, logging; django.setup()\n"
        "from fdm.log import log_context\n"
        "with log_context(run_id=7, table='payments'):\n"
        "    logging.getLogger('syncengine.runs').info('published')\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "fdm.settings", "PYTHONPATH": str(ROOT)}
    env.pop("FDM_LOG_FORMAT", None)
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stderr.strip().endswith("INFO syncengine.runs published run_id=7 table=payments")
