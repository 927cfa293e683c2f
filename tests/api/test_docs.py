"""The shell examples of docs/api.md work as written: every `sh` block, in order, in one bash script with
`set -euo pipefail`, against a live server on the test database and the Snowflake emulator. Each `curl -f`
fails the script on an HTTP error."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from fdm.apikeys.models import ApiKey
from syncconfig.models import TableConfig
from syncengine.connections import target_dsn
from syncengine.models import DecryptedRead, SyncRun
from syncengine.pipeline.protection.keyring import Keyring

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DOCS = Path(settings.BASE_DIR) / "docs" / "api.md"
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)


@pytest.fixture
def finance_target() -> Iterator[None]:
    """The examples sync into finance.transactions of the test database; other tests use that name too."""
    yield
    with psycopg.connect(target_dsn(), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS finance.transactions")
        for table in ("sync_state", "protected_columns", "compression_dictionaries"):
            if conn.execute("SELECT to_regclass(%s)", (f"_fdm.{table}",)).fetchone()[0]:
                conn.execute(f"DELETE FROM _fdm.{table} WHERE table_name = 'transactions'")  # noqa: S608


@pytest.fixture
def finance_source(snowflake) -> None:
    """The source table the examples configure: PROD_DB.FINANCE.TRANSACTIONS, with a few rows."""
    snowflake.execute("CREATE DATABASE IF NOT EXISTS PROD_DB")
    snowflake.execute("CREATE SCHEMA IF NOT EXISTS PROD_DB.FINANCE")
    snowflake.execute(
        "CREATE OR REPLACE TABLE PROD_DB.FINANCE.TRANSACTIONS (TXN_ID NUMBER(38,0), AMOUNT NUMBER(18,2), "
        "UPDATED_AT TIMESTAMP_NTZ)"
    )
    snowflake.execute(
        "INSERT INTO PROD_DB.FINANCE.TRANSACTIONS VALUES (1, 10.50, '2026-01-01 00:00:00'), "
        "(2, 20.25, '2026-01-02 00:00:00')"
    )


def test_every_shell_example_in_the_api_guide_runs_against_a_live_server(
    live_server, finance_source, finance_target, test_database_url, tmp_path, monkeypatch
):
    # The keyring of fdm's processes: this one (the live server) and the commands the examples run.
    monkeypatch.setenv("FDM_ENCRYPTION_KEYS", Keyring.generate("docs").format())
    blocks = SH_BLOCK.findall(DOCS.read_text())
    assert len(blocks) >= 8, "docs/api.md lost its examples"
    # `python manage.py` as the guide writes it, from a scratch directory for the files the examples write.
    (tmp_path / "manage.py").symlink_to(Path(settings.BASE_DIR) / "manage.py")
    script = "set -euo pipefail\n" + "\n".join(
        f"echo '--- example {i + 1}'\n{block}" for i, block in enumerate(blocks)
    )
    env = {
        **os.environ,
        "FDM_URL": live_server.url,
        "DATABASE_URL": test_database_url,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("TARGET_DATABASE_URL", None)
    result = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"

    # What the examples did is in the database.
    table = TableConfig.objects.get(name="transactions")
    assert table.schedule == "*/30 * * * *" and table.notes == "Card and wire transactions"
    run = SyncRun.objects.get(table=table, trigger="api")
    assert run.status == "cancelled"
    assert SyncRun.objects.get(table=table, trigger="command").status == "succeeded"
    assert '"amount":"10.50"' in result.stdout.replace(" ", "")  # decrypted for the admin key
    assert '"amount":"[encrypted]"' in result.stdout.replace(" ", "")  # masked for the viewer key
    assert result.stdout.replace(" ", "").count('"amount":"20.25"') >= 2  # the search found the row
    assert (
        DecryptedRead.objects.filter(table_name="transactions", via="api").count() == 3
    )  # two reads, a search
    assert ApiKey.objects.filter(user__username="nightly-report").exists()
    assert '"source_rows":2' in result.stdout.replace(" ", "")
    assert (tmp_path / "fdm-openapi.json").stat().st_size > 10_000
