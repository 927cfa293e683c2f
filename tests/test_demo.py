"""The README's quickstart: `manage.py demo` syncs the sample tables through real workers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _url_for_database(server_url: str, conninfo: str) -> str:
    name = psycopg.conninfo.conninfo_to_dict(conninfo)["dbname"]
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


@pytest.mark.slow
def test_the_demo_syncs_every_sample_table_through_the_worker_queue(
    pg_server_url, scratch_database, tmp_path
):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SNOWFLAKE_", "FDM_ENCRYPTION_KEYS"))
    }
    env.update(
        DATABASE_URL=_url_for_database(pg_server_url, scratch_database),
        FDM_STATE_DIR=str(tmp_path),
    )
    env.pop("TARGET_DATABASE_URL", None)

    demo = subprocess.run(
        [sys.executable, "manage.py", "demo", "--no-serve", "--rows", "2000", "--timeout", "180"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-4000:]
    assert "user: admin  password: " in demo.stdout
    assert "otpauth://totp/fdm%3Aadmin?secret=" in demo.stdout  # the admin's two-factor device, to enrol
    with psycopg.connect(scratch_database) as conn:
        counts = {
            table: conn.execute(f"SELECT count(*) FROM finance.{table}").fetchone()[0]  # noqa: S608 - constants
            for table in ("accounts", "transactions", "market_prices")
        }
        runs = conn.execute(
            "SELECT table_name, status FROM syncengine_syncrun ORDER BY table_name"
        ).fetchall()
        account_number_type = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'finance.accounts'::regclass AND attname = 'account_number'"
        ).fetchone()[0]
        worker_tasks = conn.execute(
            "SELECT count(*) FROM django_q_task WHERE func = 'syncengine.tasks.execute_run' AND success"
        ).fetchone()[0]
    assert counts == {"accounts": 5000, "transactions": 2000, "market_prices": 4380}
    assert runs == [("accounts", "succeeded"), ("market_prices", "succeeded"), ("transactions", "succeeded")]
    assert worker_tasks == 3  # each sync ran in a worker of the cluster, not in the demo's own process
    # The accounts' IBANs are stored encrypted, with a keyring the demo kept outside the repository.
    assert account_number_type == "bytea"
    keyring = tmp_path / "demo_keyring"
    assert keyring.stat().st_mode & 0o777 == 0o600
    assert "account_number (encrypted + searchable)" in demo.stdout
    assert keyring.read_text().split(":")[1][:20] not in demo.stdout
