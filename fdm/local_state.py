"""State that fdm keeps on a workstation under FDM_STATE_DIR (`.fdm/`): a secret key and an embedded PostgreSQL.

Settings only read this state: `read_secret_key()` and `running_embedded_database_url()` never write a file
nor start a process, so that importing the settings (tests, CI, mypy, one-off commands) has no side effect.
Creating it is an explicit step of the commands that run fdm locally (`demo`, `runserver`, `benchmark`):
`prepare_local_run()`, which calls `ensure_secret_key()` and, when DATABASE_URL is unset,
`ensure_embedded_database()`.
"""

from __future__ import annotations

import os
import secrets
import warnings
from pathlib import Path
from typing import Any

from fdm.env import env_str

SECRET_KEY_FILE = "secret_key"
EMBEDDED_USER = "postgres"


def read_secret_key(state_dir: Path) -> str | None:
    """The key kept in `state_dir` by `ensure_secret_key`, or None when there is none yet."""
    try:
        key = (state_dir / SECRET_KEY_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    return key or None


def ensure_secret_key(state_dir: Path | None = None) -> str:
    """SECRET_KEY when it is set; else the key kept in `state_dir`, written once (mode 0600) so that sessions
    survive restarts. This process's settings use the key from then on."""
    from django.conf import settings

    configured = env_str("SECRET_KEY")
    if configured:
        return configured
    state_dir = Path(settings.STATE_DIR) if state_dir is None else state_dir
    key = read_secret_key(state_dir)
    if key is None:
        state_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(50)
        try:
            # Created with its final mode: the key is never readable by others, not even for a moment.
            descriptor = os.open(state_dir / SECRET_KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another command wrote it first: use that one
            key = read_secret_key(state_dir) or key
        else:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(key)
    settings.SECRET_KEY = key
    return key


def embedded_database_url(pgdata: Path, socket_dir: Path | None = None) -> str:
    """The URL of the embedded PostgreSQL in `pgdata` (it listens only on a Unix socket, in `pgdata` unless
    that path is too long for one)."""
    return f"postgresql://{EMBEDDED_USER}:@/{EMBEDDED_USER}?host={socket_dir or pgdata}"


def running_embedded_database_url(pgdata: Path) -> str | None:
    """The URL of the embedded PostgreSQL in `pgdata` if it is running, read from its postmaster.pid; None when
    it is not running."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None
    # postmaster.pid: pid, data directory, start time, port, socket directory, listen address, shared memory,
    # status.
    if len(lines) < 5:
        return None
    try:
        pid = int(lines[0].strip())
    except ValueError:
        return None
    if not _process_exists(pid):
        return None
    socket_dir = lines[4].strip()
    return embedded_database_url(pgdata, Path(socket_dir) if socket_dir else None)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs as another user (pgserver's own, when fdm runs as root)
        return True
    return True


def ensure_embedded_database(pgdata: Path | None = None) -> str:
    """Start the embedded PostgreSQL in `pgdata` unless it runs already, point this process's default database
    at it, and return its URL. It keeps running after this process ends, so that the web server, workers and
    later commands share it."""
    from django.conf import settings

    pgdata = Path(settings.EMBEDDED_PGDATA) if pgdata is None else pgdata
    url = running_embedded_database_url(pgdata)
    if url is None:
        # platformdirs warns, also at exit, on machines without XDG_RUNTIME_DIR (containers, CI); pgserver copes.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver  # the binaries are needed only here

        pgdata.mkdir(parents=True, exist_ok=True)
        url = pgserver.get_server(pgdata, cleanup_mode=None).get_uri()
    _use_default_database(url)
    return url


def stop_embedded_database(pgdata: Path | None = None) -> bool:
    """Stop the embedded PostgreSQL in `pgdata` if it runs (a fast shutdown: open sessions end, committed data
    stays); True when there was one to stop."""
    from django.conf import settings

    pgdata = Path(settings.EMBEDDED_PGDATA) if pgdata is None else pgdata
    if running_embedded_database_url(pgdata) is None:
        return False
    from pgserver import _commands  # pg_ctl is generated at import, unseen by type checkers

    # pgserver runs the server as its own `pgserver` user when started by root; pg_ctl must run as that user.
    owner = {"user": "pgserver"} if os.geteuid() == 0 else {}
    _commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, **owner)  # type: ignore[attr-defined]
    return True


def database_settings(url: str) -> dict[str, Any]:
    """Django's DATABASES entry for `url` (always the PostgreSQL backend)."""
    import environ

    config: dict[str, Any] = dict(environ.Env.db_url_config(url))
    config["ENGINE"] = "django.db.backends.postgresql"
    config.setdefault("CONN_MAX_AGE", 0)
    config.setdefault("OPTIONS", {})
    return config


def _use_default_database(url: str) -> None:
    """Point this process's settings, and its not yet opened connections, at `url`."""
    from django.conf import settings
    from django.db import connections

    if settings.DATABASE_URL == url:
        return
    settings.DATABASE_URL = url
    # Updated in place: connection handlers already hold this very dict, with Django's defaults filled in.
    default = settings.DATABASES["default"]
    for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS"):
        default[key] = database_settings(url)[key]
    connections["default"].close()


def embedded_database_stopped() -> bool:
    """True when fdm runs on the embedded default (DATABASE_URL unset) and that database is not running."""
    from django.conf import settings

    if not getattr(settings, "EMBEDDED_DATABASE", False):
        return False
    return running_embedded_database_url(Path(settings.EMBEDDED_PGDATA)) is None


def embedded_database_hint() -> str:
    """One line on how to start the embedded database, for a command that needed it and found it stopped."""
    from django.conf import settings

    return (
        f"fdm: DATABASE_URL is unset and the embedded PostgreSQL under {settings.EMBEDDED_PGDATA} is not "
        "running; start it with `make demo` or `python manage.py runserver`, or set DATABASE_URL."
    )


def prepare_local_run() -> None:
    """What a local run needs before it starts: a kept secret key and, on the embedded default, the database."""
    from django.conf import settings

    ensure_secret_key()
    if settings.EMBEDDED_DATABASE:
        ensure_embedded_database()
