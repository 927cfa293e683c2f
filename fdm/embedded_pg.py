"""Embedded PostgreSQL for running fdm without a database server (laptop, demo).

Used only when DATABASE_URL is unset. The pgserver wheel ships PostgreSQL binaries; the cluster lives under
`.fdm/pgdata` and keeps running between commands so that the web server, workers and commands share it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

# platformdirs warns, also at exit, on machines without XDG_RUNTIME_DIR (containers, CI); pgserver copes.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def embedded_database_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded cluster and return its URL."""
    import pgserver  # imported lazily: only the embedded default needs it

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode=None)
    return server.get_uri()
