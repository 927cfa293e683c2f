"""docker-compose.yml describes the stack docs/deployment.md promises, and .env.example lists every setting."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from fdm import pipeline_settings
from tests.deploy.tools import find_tool

ROOT = Path(__file__).resolve().parents[2]
FDM_SERVICES = ("migrate", "web", "worker", "scheduler")
# Settings read outside fdm/settings.py's env_* calls (the keyring, the Snowflake connection, gunicorn) and the
# second wave's names (docs: DESIGN), listed ahead so that .env.example stays complete as they land.
OTHER_SETTINGS = {
    "FDM_ENCRYPTION_KEYS",
    "SNOWFLAKE_ACCOUNT",
    "SNOWFLAKE_USER",
    "SNOWFLAKE_PASSWORD",
    "SNOWFLAKE_PRIVATE_KEY_FILE",
    "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE",
    "SNOWFLAKE_ROLE",
    "SNOWFLAKE_WAREHOUSE",
    "SNOWFLAKE_HOST",
    "SNOWFLAKE_PORT",
    "SNOWFLAKE_PROTOCOL",
    "SNOWFLAKE_LOGIN_TIMEOUT",
    "SNOWFLAKE_NETWORK_TIMEOUT",
    "SNOWFLAKE_SESSION_PARAMETERS",
    "WEB_CONCURRENCY",
    "FDM_LOG_FORMAT",
    "FDM_CORS_ALLOWED_ORIGINS",
    "FDM_BACKUP_DIR",
    "FDM_BACKUP_KEEP",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> dict:
    """`docker-compose config` with .env.example as .env: the file as Compose resolves it."""
    compose = find_tool("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (make test installs Debian's package)")
    folder = tmp_path_factory.mktemp("compose")
    shutil.copy(ROOT / "docker-compose.yml", folder / "docker-compose.yml")
    shutil.copy(ROOT / ".env.example", folder / ".env")
    (folder / "monitoring").symlink_to(ROOT / "monitoring")
    done = subprocess.run(
        [compose, "config"], cwd=folder, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def settings_fdm_reads() -> set[str]:
    text = (ROOT / "fdm" / "settings.py").read_text()
    pipeline = {setting.env for setting in pipeline_settings.SETTINGS}
    return set(re.findall(r'env_[a-z]+\(\s*"([A-Z][A-Z0-9_]+)"', text)) | pipeline | OTHER_SETTINGS


def test_compose_validates_and_runs_every_part_of_the_stack(stack):
    services = stack["services"]
    assert set(services) == {*FDM_SERVICES, "postgres", "warehouse", "redis", "prometheus", "grafana"}
    # One image for the four fdm services; the web service keeps the image's gunicorn command.
    assert len({services[name]["image"] for name in FDM_SERVICES}) == 1
    assert "command" not in services["web"]
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    for name in ("worker", "scheduler"):
        assert services[name]["command"] == ["python", "manage.py", "qcluster"]


def test_only_the_one_shot_migrate_service_migrates_and_the_others_wait_for_it(stack):
    services = stack["services"]
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "scheduler"):
        assert "migrate" not in str(services[name].get("command", ""))
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            if condition["condition"] == "service_healthy":
                assert not services[dependency]["healthcheck"].get("disable"), (name, dependency)
    assert services["migrate"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "warehouse": {"condition": "service_healthy"},
    }


def test_workers_scale_and_never_fire_schedules_and_one_scheduler_does(stack):
    services = stack["services"]
    worker, scheduler = services["worker"], services["scheduler"]
    assert worker["environment"]["FDM_SCHEDULER"] == "false"
    assert scheduler["environment"]["FDM_SCHEDULER"] == "true"
    assert {name for name in FDM_SERVICES if services[name]["environment"]["FDM_SCHEDULER"] == "true"} == {
        "scheduler"
    }
    # `--scale worker=N` needs neither a fixed container name nor a published port.
    assert "container_name" not in worker and "ports" not in worker
    assert scheduler.get("deploy", {}).get("replicas", 1) == 1
    for name in FDM_SERVICES:
        environment = services[name]["environment"]
        assert environment["REDIS_URL"] == "redis://redis:6379/0"
        assert environment["DATABASE_URL"].endswith("@postgres:5432/fdm")
        assert environment["TARGET_DATABASE_URL"].endswith("@warehouse:5432/warehouse")


def test_web_health_and_the_monitoring_mounts(stack):
    services = stack["services"]
    assert "/app/deploy/healthcheck.py" in services["web"]["healthcheck"]["test"]
    assert "web" in services["web"]["environment"]["ALLOWED_HOSTS"].split(",")
    prometheus = yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text())
    assert prometheus["scrape_configs"][0]["static_configs"][0]["targets"] == ["web:8000"]
    mounts = bind_mounts(services["prometheus"])
    assert Path(mounts["/etc/prometheus"]).name == "monitoring"
    mounts = bind_mounts(services["grafana"])
    assert mounts["/etc/grafana/provisioning"].endswith("monitoring/grafana/provisioning")
    assert mounts["/var/lib/grafana/dashboards"].endswith("monitoring/grafana/dashboards")


def test_env_example_lists_every_setting_with_a_comment():
    lines = (ROOT / ".env.example").read_text().splitlines()
    listed: dict[str, int] = {}
    for number, line in enumerate(lines):
        match = re.fullmatch(r"(?:# )?([A-Z][A-Z0-9_]+)=.*", line)
        if match:
            listed[match.group(1)] = number
    missing = settings_fdm_reads() - set(listed)
    assert not missing, f".env.example lacks {sorted(missing)}"
    for name, number in listed.items():
        # Each variable, or the block of variables it belongs to, follows a comment in words.
        above = number - 1
        while re.fullmatch(r"(?:# )?[A-Z][A-Z0-9_]+=.*", lines[above]):
            above -= 1
        assert lines[above].startswith("# ") and len(lines[above]) > 10, name


def bind_mounts(service: dict) -> dict[str, str]:
    """Target -> source of a service's volumes, in the long form or Compose 1's `source:target:mode`."""
    mounts = {}
    for volume in service["volumes"]:
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
            mounts[target] = source
        else:
            mounts[volume["target"]] = volume["source"]
    return mounts
