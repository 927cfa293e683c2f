"""The production posture (FDM_HTTPS, on by default): HTTPS only, secure cookies, HSTS, a configured SECRET_KEY,
and `check --deploy` clean; FDM_HTTPS=false for plain-http local runs such as the demo.

Settings are read once per process, so the postures other than the tests' own (FDM_HTTPS=false, pyproject's
pytest env) are checked in subprocesses."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_PROBE = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({name: getattr(settings, name) for name in (
    "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_PROXY_SSL_HEADER", "FDM_TRUSTED_PROXY_COUNT",
)}))
"""


def _production_env(**overrides: str) -> dict[str, str]:
    """This environment as a production deployment has it: DEBUG and FDM_HTTPS unset, a long random
    SECRET_KEY, a real host name."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SECRET_KEY", "FDM_HTTPS", "DEBUG", "SECURE_", "FDM_PROXY", "FDM_TRUSTED"))
    }
    env.update(
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="fdm.example.com",
        DJANGO_SETTINGS_MODULE="fdm.settings",
        PYTHONPATH=str(ROOT),
    )
    env.update(overrides)
    return {key: value for key, value in env.items() if value != ""}


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def _probe(env: dict[str, str]) -> dict:
    completed = _run(["-c", SETTINGS_PROBE], env)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.splitlines()[-1])


def test_check_deploy_passes_without_a_warning_in_production():
    completed = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], _production_env())

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "WARNINGS" not in completed.stderr + completed.stdout


def test_production_is_https_only_with_secure_cookies_and_a_year_of_hsts():
    probed = _probe(_production_env())

    assert probed["SECURE_SSL_REDIRECT"] is True
    assert probed["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600
    assert probed["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert probed["SECURE_HSTS_PRELOAD"] is False  # only when asked
    assert probed["SESSION_COOKIE_SECURE"] is True
    assert probed["CSRF_COOKIE_SECURE"] is True
    assert probed["SECURE_PROXY_SSL_HEADER"] is None  # no proxy is trusted unless one is named
    assert probed["FDM_TRUSTED_PROXY_COUNT"] == 0


def test_fdm_https_false_turns_the_https_settings_off():
    probed = _probe(_production_env(FDM_HTTPS="false", SECRET_KEY=""))

    assert probed["SECURE_SSL_REDIRECT"] is False
    assert probed["SECURE_HSTS_SECONDS"] == 0
    assert probed["SESSION_COOKIE_SECURE"] is False
    assert probed["CSRF_COOKIE_SECURE"] is False


def test_the_proxy_ssl_header_comes_from_fdm_proxy_ssl_header():
    probed = _probe(
        _production_env(FDM_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO=https", SECURE_HSTS_PRELOAD="1")
    )

    assert probed["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert probed["FDM_TRUSTED_PROXY_COUNT"] == 1  # the proxy that says the scheme also says the client
    assert probed["SECURE_HSTS_PRELOAD"] is True


def test_a_malformed_proxy_ssl_header_is_refused_in_one_line():
    completed = _run(["manage.py", "check"], _production_env(FDM_PROXY_SSL_HEADER="X-Forwarded-Proto: https"))

    assert completed.returncode == 1
    [line] = completed.stderr.strip().splitlines()
    assert "FDM_PROXY_SSL_HEADER" in line and "HTTP_X_FORWARDED_PROTO=https" in line


def test_production_refuses_to_start_without_secret_key_in_one_line():
    completed = _run(["manage.py", "check"], _production_env(SECRET_KEY=""))

    assert completed.returncode == 1
    [line] = completed.stderr.strip().splitlines()
    assert "SECRET_KEY is not set" in line and "FDM_HTTPS=false" in line
    assert "Traceback" not in completed.stderr


def test_the_wsgi_application_refuses_to_load_without_secret_key():
    completed = _run(["-c", "import fdm.wsgi"], _production_env(SECRET_KEY=""))

    assert completed.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set" in completed.stderr


def test_the_development_server_and_the_demo_run_in_plain_http_without_secret_key():
    # Their --help loads the settings as the commands do, without starting anything.
    for command in ("runserver", "demo"):
        completed = _run(["manage.py", command, "--help"], _production_env(SECRET_KEY=""))
        assert completed.returncode == 0, completed.stderr


def test_make_demo_sets_fdm_https_false():
    makefile = (ROOT / "Makefile").read_text()
    [recipe] = re.findall(r"^demo:.*\n\t(.*)$", makefile, flags=re.MULTILINE)

    assert recipe.startswith("FDM_HTTPS=false ") and "manage.py demo" in recipe


def test_make_test_runs_check_deploy_with_a_production_environment():
    makefile = (ROOT / "Makefile").read_text()

    assert "manage.py check --deploy --fail-level WARNING" in makefile


# --- requests, with the production settings switched on in this process ---


@pytest.fixture
def https_only(settings) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 365 * 24 * 3600
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True


def test_plain_http_is_redirected_to_https(client, https_only):
    response = client.get("/admin/login/")

    assert response.status_code == 301
    assert response["Location"] == "https://testserver/admin/login/"


def test_the_health_endpoints_answer_plain_http_probes(client, https_only, db):
    assert client.get("/health/live").status_code == 200
    assert client.get("/health/ready").status_code in (200, 503)  # answered, not redirected


def test_https_responses_carry_hsts(client, https_only):
    response = client.get("/admin/login/", secure=True)

    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000"  # subdomains: from the environment


def test_with_fdm_https_false_the_admin_logs_in_over_plain_http(client, db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    User.objects.create_user("operator", password="a long enough password", is_staff=True)

    response = client.post(
        "http://127.0.0.1/admin/login/?next=/admin/",
        {"username": "operator", "password": "a long enough password"},
        HTTP_HOST="127.0.0.1",
    )

    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert not response.cookies["sessionid"]["secure"]
    assert client.get("/admin/", HTTP_HOST="127.0.0.1").status_code == 200
