"""CORS: off by default; FDM_CORS_ALLOWED_ORIGINS lets the listed origins' pages call /api/ and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings

pytestmark = pytest.mark.django_db

APP = "https://reports.example.com"
PREFLIGHT = {"HTTP_ORIGIN": APP, "HTTP_ACCESS_CONTROL_REQUEST_METHOD": "GET"}


def preflight(client, path: str, **headers: str):
    return client.options(
        path, **{**PREFLIGHT, "HTTP_ACCESS_CONTROL_REQUEST_HEADERS": "authorization", **headers}
    )


def test_no_origin_is_allowed_by_default(client):
    assert django_settings.CORS_ALLOWED_ORIGINS == []
    response = preflight(client, "/api/v1/tables/")
    assert "access-control-allow-origin" not in response.headers


def test_a_listed_origin_may_call_the_api_with_a_key_but_without_cookies(client, settings, api_key):
    settings.CORS_ALLOWED_ORIGINS = [APP]
    response = preflight(client, "/api/v1/tables/")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    assert "authorization" in response.headers["access-control-allow-headers"]
    assert "access-control-allow-credentials" not in response.headers
    actual = client.get("/api/v1/tables/", HTTP_ORIGIN=APP, HTTP_AUTHORIZATION=f"Api-Key {api_key('viewer')}")
    assert actual.status_code == 200 and actual.headers["access-control-allow-origin"] == APP


def test_other_origins_and_other_paths_are_refused(client, settings):
    settings.CORS_ALLOWED_ORIGINS = [APP]
    other = preflight(client, "/api/v1/tables/", HTTP_ORIGIN="https://evil.example.net")
    assert "access-control-allow-origin" not in other.headers
    for path in ("/admin/", "/metrics", "/health/ready"):
        assert "access-control-allow-origin" not in preflight(client, path).headers


def test_a_malformed_origin_stops_the_start_with_the_setting_named():
    env = {
        **os.environ,
        "FDM_CORS_ALLOWED_ORIGINS": "https://ok.example.com, reports.example.com/",
        "DJANGO_SETTINGS_MODULE": "fdm.settings",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "FDM_CORS_ALLOWED_ORIGINS: 'reports.example.com/' is not an origin" in done.stderr
