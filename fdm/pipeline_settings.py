"""The pipeline's settings: one documented file, `config/pipeline.yaml`, overlaid by the environment's file and
then by environment variables.

Each setting's value is decided in this order, the last one given winning:

1. its default here;
2. `config/pipeline.yaml`, key `pipeline.<name>`;
3. `config/environments/{FDM_ENV}.yaml`, key `pipeline.<name>`;
4. its environment variable (`FDM_COPY_STREAMS`, ...; the `*_FILE` rule of `fdm.env` applies).

Everything is checked when settings load (types, lower bounds, unknown keys), with an error that names the key
and the file, or the variable: a process with a wrong setting does not start. `python manage.py show_settings`
prints each effective value and where it came from. No setting here is a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fdm.env import ConfigurationError, env_value
from fdm.yaml_strict import StrictSafeLoader

FILE_NAME = "pipeline.yaml"
SECTION = "pipeline"


@dataclass(frozen=True)
class Setting:
    name: str
    env: str
    default: int
    minimum: int
    help: str


SETTINGS = (
    Setting(
        "copy_streams",
        "FDM_COPY_STREAMS",
        2,
        1,
        "COPY connections that fill a run's staging table in parallel",
    ),
    Setting(
        "source_connections",
        "FDM_SOURCE_CONNECTIONS",
        2,
        1,
        "Snowflake sessions that read a large table's key-range slices at once in a full load",
    ),
    Setting(
        "publish_lock_timeout_seconds",
        "FDM_PUBLISH_LOCK_TIMEOUT",
        30,
        1,
        "how long a publish waits for readers' locks on the target before failing (transient)",
    ),
    Setting(
        "sync_timeout_seconds",
        "FDM_SYNC_TIMEOUT",
        3600,
        60,
        "a worker stops a sync that runs longer than this",
    ),
    Setting("max_attempts", "FDM_SYNC_MAX_ATTEMPTS", 3, 1, "attempts of a run whose failures are transient"),
    Setting(
        "retry_backoff_seconds",
        "FDM_RETRY_BACKOFF_SECONDS",
        60,
        0,
        "wait before the second attempt; it doubles for each attempt after",
    ),
    Setting(
        "run_stale_grace_seconds",
        "FDM_RUN_STALE_GRACE_SECONDS",
        300,
        0,
        "a run silent for longer than the sync timeout plus this is failed as its worker died",
    ),
    Setting(
        "run_orphan_grace_seconds",
        "FDM_RUN_ORPHAN_GRACE_SECONDS",
        30,
        0,
        "a running run whose table lock nobody holds is failed after this (three missed heartbeats)",
    ),
    Setting(
        "run_queued_max_age_seconds",
        "FDM_RUN_QUEUED_MAX_AGE",
        6 * 3600,
        60,
        "a queued run that no worker took for this long is failed",
    ),
    Setting("reaper_interval_minutes", "FDM_REAPER_INTERVAL_MINUTES", 5, 1, "how often the reaper looks"),
    Setting("run_log_limit", "FDM_RUN_LOG_LIMIT", 500, 10, "structured log entries kept per run"),
    Setting(
        "run_retention_days",
        "FDM_RUN_RETENTION_DAYS",
        0,
        0,
        "finished runs older than this are purged daily; 0 keeps them",
    ),
    Setting("workers", "FDM_WORKERS", 2, 1, "worker processes per qcluster"),
    Setting(
        "snowflake_login_timeout_seconds",
        "SNOWFLAKE_LOGIN_TIMEOUT",
        60,
        1,
        "how long a Snowflake login may take",
    ),
    Setting(
        "snowflake_network_timeout_seconds",
        "SNOWFLAKE_NETWORK_TIMEOUT",
        300,
        1,
        "how long a Snowflake request may wait on the network",
    ),
)
BY_NAME = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True)
class Resolved:
    """A setting's effective value and where it came from: "default", a file's path, or a variable's name."""

    setting: Setting
    value: int
    source: str


class PipelineSettings(Mapping[str, int]):
    """The effective pipeline settings, by name (`settings.FDM_PIPELINE["copy_streams"]`)."""

    def __init__(self, resolved: dict[str, Resolved]):
        self.resolved = resolved

    def __getitem__(self, name: str) -> int:
        return self.resolved[name].value

    def __iter__(self) -> Any:
        return iter(self.resolved)

    def __len__(self) -> int:
        return len(self.resolved)


def load(
    config_dir: Path, *, env_name: str | None, environ: Mapping[str, str] | None = None
) -> PipelineSettings:
    """Resolve every setting (see the module's docstring); ConfigurationError names the first bad one."""
    resolved = {setting.name: Resolved(setting, setting.default, "default") for setting in SETTINGS}
    files = [config_dir / FILE_NAME]
    if env_name:
        files.append(config_dir / "environments" / f"{env_name}.yaml")
    for path in files:
        for name, value in _section(path).items():
            resolved[name] = Resolved(BY_NAME[name], value, str(path))
    for setting in SETTINGS:
        found = env_value(setting.env, environ=environ)
        if found is not None:
            value = _checked(setting, found.text, where=found.source)
            resolved[setting.name] = Resolved(setting, value, found.source)
    return PipelineSettings(resolved)


def _section(path: Path) -> dict[str, int]:
    """The checked values under `pipeline:` in a YAML file; {} when the file or the section is absent."""
    if not path.is_file():
        return {}
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=StrictSafeLoader)  # noqa: S506 - safe
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"{path}: cannot be read as YAML: {str(exc).splitlines()[0]}") from None
    section = document.get(SECTION) if isinstance(document, Mapping) else None
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigurationError(f"{path}: {SECTION}: must be a mapping of settings")
    values = {}
    for name, raw in section.items():
        if name not in BY_NAME:
            raise ConfigurationError(
                f"{path}: {SECTION}.{name}: unknown setting; known settings: {', '.join(BY_NAME)}"
            )
        values[name] = _checked(BY_NAME[name], raw, where=f"{path}: {SECTION}.{name}")
    return values


def _checked(setting: Setting, raw: Any, *, where: str) -> int:
    """`raw` as the setting's whole number, at least its minimum; text (from a variable) is parsed."""
    value = raw
    if isinstance(raw, str):
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigurationError(f"{where}: expected a whole number, got {raw!r}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{where}: expected a whole number, got {raw!r}")
    if value < setting.minimum:
        raise ConfigurationError(f"{where}: must be at least {setting.minimum}, got {value}")
    return value
