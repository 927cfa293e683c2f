"""Encryption in a process of its own (`protection.sealer`): a large run's envelopes are made in a child that
holds only the primary key, read back exactly, and a child that dies or a run that dies leaves nothing behind."""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from syncengine.dev.sampledata import seed_transactions
from syncengine.pipeline.errors import TransientError
from syncengine.pipeline.protection.keyring import Keyring
from syncengine.pipeline.protection.sealer import OFFLOAD_MIN_ROWS, Sealer
from syncengine.pipeline.spec import EncryptionMode, EncryptionSpec
from tests.pipeline.conftest import staging_tables
from tests.pipeline.test_protection import _read

KEYRING = Keyring.generate("k1")
ROWS = 2 * OFFLOAD_MIN_ROWS + 1_000  # three batches: the child, started on the first, seals all three


def _sealers() -> list[psutil.Process]:
    """This process's live sealer children (a killed one not yet reaped is a zombie: gone)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "syncengine.pipeline.protection.sealer" in " ".join(child.cmdline()):
                found.append(child)
        except (psutil.ZombieProcess, psutil.NoSuchProcess):
            continue
    return found


def _encrypted(make_spec, **overrides):
    overrides.setdefault("batch_size", OFFLOAD_MIN_ROWS)
    return make_spec(
        "TRANSACTIONS",
        primary_key=("TXN_ID",),
        encryption=EncryptionSpec(
            mode=EncryptionMode.COLUMNS, columns=("ACCOUNT_ID", "AMOUNT"), searchable=("ACCOUNT_ID",)
        ),
        **overrides,
    )


def _decrypted(dsn: str, table: str) -> list[dict]:
    rows: list[dict] = []
    after = None
    while True:
        page = _read(dsn, KEYRING, table=table, limit=1000, after=after)
        rows.extend(page.rows)
        if page.next_after is None:
            return rows
        after = page.next_after


@pytest.fixture
def transactions(source):
    seed_transactions(source.conn, database=source.database, schema="PUBLIC", table="TRANSACTIONS", rows=ROWS)


def test_a_large_encrypted_load_is_sealed_in_a_child_and_reads_back_like_one_sealed_here(
    transactions, make_spec, sync, target, scratch_database
):
    seen: list[int] = []
    result = sync(
        _encrypted(make_spec),
        keyring=KEYRING,
        on_progress=lambda stage, rows: seen.extend(child.pid for child in _sealers()),
    )
    # Below the threshold every batch is encrypted on the run's thread.
    sync(
        _encrypted(make_spec, name="here", target_table="here", batch_size=OFFLOAD_MIN_ROWS - 1),
        keyring=KEYRING,
        on_progress=lambda stage, rows: seen.extend([-1] if _sealers() else []),
    )

    assert len(set(seen)) == 1 and -1 not in seen, (
        "one child sealed the first run's batches, none the second's"
    )
    assert result.rows_inserted == ROWS
    sealed = _decrypted(scratch_database, "transactions")
    assert len(sealed) == ROWS
    assert sealed == _decrypted(scratch_database, "here")
    stored = target(
        "SELECT count(*), count(DISTINCT account_id), min(length(amount)) FROM public.transactions"
    )
    assert stored[0][:2] == (ROWS, ROWS), "every value is its own envelope, salts and nonces differ"
    assert result.checks["protection"]["account_id"]["bytes_stored"] > 0
    assert _sealers() == [] and staging_tables(target) == []


def test_the_child_gets_the_primary_key_over_its_pipe_and_no_secret_by_its_environment(monkeypatch):
    monkeypatch.setenv("SNOWFLAKE_PASSWORD", "canary-password")
    monkeypatch.setenv("FDM_ENCRYPTION_KEYS", "canary-keys")
    keyring = Keyring.generate("new")
    older = Keyring.generate("old")
    keyring = Keyring(primary="new", keys={"new": keyring.key("new"), "old": older.key("old")})
    sealer = Sealer(keyring, table="t")
    try:
        (child,) = _sealers()
        seen = (child.environ(), " ".join(child.cmdline()))
    finally:
        sealer.close()

    environment, command = seen
    assert "SNOWFLAKE_PASSWORD" not in environment and "FDM_ENCRYPTION_KEYS" not in environment
    for key_id in ("new", "old"):
        assert keyring.key(key_id).hex() not in command
        assert keyring.key(key_id).hex() not in " ".join(environment.values())
    assert _sealers() == []


def test_a_child_that_dies_fails_the_run_transient_and_leaves_the_target_as_it_was(
    transactions, make_spec, sync, target
):
    spec = _encrypted(make_spec)
    sync(spec, keyring=KEYRING)
    before = target("SELECT count(*), sum(length(account_id)) FROM public.transactions")

    def kill_the_sealer(stage: str, rows: int) -> None:
        for child in _sealers():
            child.kill()

    with pytest.raises(TransientError, match="the encryption process .* stopped answering"):
        sync(spec, keyring=KEYRING, full_refresh=True, on_progress=kill_the_sealer)

    assert target("SELECT count(*), sum(length(account_id)) FROM public.transactions") == before
    assert staging_tables(target) == [] and _sealers() == []


def test_the_child_exits_when_its_run_is_killed():
    script = (
        "import sys, time\n"
        "from syncengine.pipeline.protection.keyring import Keyring\n"
        "from syncengine.pipeline.protection.sealer import Sealer\n"
        "sealer = Sealer(Keyring.generate('k'), table='t')\n"
        "print(sealer._process.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    run = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)  # noqa: S603
    try:
        child = psutil.Process(int(run.stdout.readline()))
        assert child.is_running()
        os.kill(run.pid, signal.SIGKILL)
        run.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.05)
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    finally:
        run.kill()
