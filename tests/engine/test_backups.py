"""Backups and restores of synced tables against the real target database: every stored byte comes back, the
data API decrypts the restored rows, and a tampered, truncated or wrongly keyed archive is refused with the
target left as it was. Also the scheduled backup's retention and the housekeeping jobs."""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule
from rest_framework.test import APIClient

from fdm.api.roles import Role
from fdm.apikeys.services import service_key_create
from syncengine import backups, connections, maintenance, services
from syncengine.choices import RunStatus, RunTrigger
from syncengine.models import SyncRun
from syncengine.pipeline.archive.tables import MANIFEST, MANIFEST_HASH
from syncengine.pipeline.load import STAGING_SCHEMA, staging_prefix
from syncengine.pipeline.locks import try_lock_table

pytestmark = pytest.mark.django_db

IBANS = ["NL91ABNA0417164300", "BE68539007547034"]


@pytest.fixture
def accounts(keyring, make_table, snowflake):
    """A synced table of 60 accounts: IBAN (searchable) and holder encrypted, notes compressed."""
    table = make_table(
        primary_key=["ACCOUNT_ID"],
        encryption_mode="columns",
        encrypted_columns=["IBAN", "HOLDER_NAME"],
        searchable_columns=["IBAN"],
        compression_mode="columns",
        compressed_columns=["NOTES"],
    )
    name = f"FDM_ENGINE.PUBLIC.{table.snowflake_table}"
    snowflake.execute(
        f"CREATE TABLE {name} (ACCOUNT_ID NUMBER(38,0) PRIMARY KEY, IBAN TEXT, HOLDER_NAME TEXT, NOTES TEXT)"
    )
    snowflake.executemany(
        f"INSERT INTO {name} VALUES (%s, %s, %s, %s)",
        [(i, IBANS[i % 2], f"Holder {i:03d}", f"note {i} " * 12 if i % 7 else None) for i in range(60)],
    )
    run = services.run_execute(run_id=services.run_create(table=table, trigger=RunTrigger.COMMAND).pk)
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    return table


def query(sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(connections.target_dsn(), autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def fingerprint(table) -> dict[str, object]:
    """md5 of the table's stored rows in key order, and its rows of fdm's catalog, dictionaries and state."""
    relation = f'public."{table.postgres_table}"'
    where = "WHERE target_schema = 'public' AND target_table = %s"
    return {
        "rows": query(f"SELECT md5(string_agg(t::text, '|' ORDER BY account_id)) FROM {relation} AS t")[0][0],
        "catalog": query(
            f"SELECT column_name, encrypted, compressed, blind_index_column, row_key FROM _fdm.protected_columns "
            f"{where} ORDER BY column_name",
            (table.postgres_table,),
        ),
        "dictionaries": query(
            f"SELECT dict_id, md5(data) FROM _fdm.compression_dictionaries {where} ORDER BY dict_id",
            (table.postgres_table,),
        ),
        "state": query(
            "SELECT mode, watermark, rows_published FROM _fdm.sync_state WHERE table_name = %s", (table.name,)
        ),
        "primary_key": query(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'",
            (relation,),
        ),
    }


def drop_everything_of(table) -> None:
    query(f'DROP TABLE public."{table.postgres_table}"')
    for state in ("protected_columns", "compression_dictionaries"):
        query(f"DELETE FROM _fdm.{state} WHERE target_table = %s", (table.postgres_table,))
    query("DELETE FROM _fdm.sync_state WHERE table_name = %s", (table.name,))


def decrypted_rows(table) -> list[dict]:
    cache.clear()  # the API key throttle's counts
    _, key = service_key_create(username=f"reader-{table.name}", role=Role.parse("admin"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    response = client.get(f"/api/v1/data/{table.name}/", {"page_size": 3})
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_backup_drop_restore_gives_back_every_stored_byte_and_the_api_decrypts(accounts, tmp_path):
    before = fingerprint(accounts)
    stored = query(f'SELECT iban FROM public."{accounts.postgres_table}" LIMIT 1')[0][0]
    assert IBANS[0].encode() not in bytes(stored)  # ciphertext at rest

    call_command("backup_data", accounts.name, "--out", str(tmp_path))
    manifest = json.loads((tmp_path / accounts.name / MANIFEST).read_text())
    assert manifest["checksums"]["rows"] == 60
    assert manifest["key_ids"] == ["k1"]
    assert {c["name"]: c["type"] for c in manifest["columns"]}["account_id"] == "numeric(38,0)"
    archived = (tmp_path / accounts.name / manifest["rows_file"]).read_bytes()
    assert IBANS[0].encode() not in archived and b"Holder 001" not in archived

    drop_everything_of(accounts)
    call_command("restore_data", str(tmp_path))

    assert fingerprint(accounts) == before
    rows = decrypted_rows(accounts)
    assert [(row["account_id"], row["iban"], row["holder_name"]) for row in rows] == [
        ("0", IBANS[0], "Holder 000"),
        ("1", IBANS[1], "Holder 001"),
        ("2", IBANS[0], "Holder 002"),
    ]
    assert rows[1]["notes"] == "note 1 " * 12
    # The next sync carries on from the restored table and state.
    run = services.run_execute(run_id=services.run_create(table=accounts, trigger=RunTrigger.COMMAND).pk)
    assert run.status == RunStatus.SUCCEEDED, run.error_message


def _rows_file(directory: Path) -> Path:
    return directory / json.loads((directory / MANIFEST).read_text())["rows_file"]


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_archive_is_refused_and_the_table_stays_as_it_was(accounts, tmp_path, damage):
    call_command("backup_data", accounts.name, "--out", str(tmp_path))
    query(
        f'DELETE FROM public."{accounts.postgres_table}" WHERE account_id >= 30'
    )  # differs from the archive
    before = fingerprint(accounts)
    path = _rows_file(tmp_path / accounts.name)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    else:
        del data[len(data) // 2 :]
    path.write_bytes(bytes(data))

    with pytest.raises(CommandError) as refused:
        call_command("restore_data", str(tmp_path))
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"{accounts.name}: rows.bin.zst")
    assert ("truncated" if damage == "truncate" else "SHA-256") in message
    assert fingerprint(accounts) == before


def test_values_that_disagree_with_the_manifest_roll_back_the_restore(accounts, tmp_path):
    """An archive whose files and manifest were both rewritten (hashes made to match) still fails the
    checksums computed by PostgreSQL after the COPY, inside the transaction."""
    call_command("backup_data", accounts.name, "--out", str(tmp_path))
    directory = tmp_path / accounts.name
    manifest = json.loads((directory / MANIFEST).read_text())
    manifest["checksums"]["columns"]["notes"] = "12345"
    (directory / MANIFEST).write_text(json.dumps(manifest))
    from syncengine.pipeline.archive.files import file_sha256

    (directory / MANIFEST_HASH).write_text(f"{file_sha256(directory / MANIFEST)[0]}  {MANIFEST}\n")
    before = fingerprint(accounts)
    with pytest.raises(CommandError, match=r"restored values differ from the manifest's checksums \(notes\)"):
        call_command("restore_data", str(directory))
    assert fingerprint(accounts) == before
    assert not query("SELECT relname FROM pg_class WHERE relname LIKE '_fdm_restore_%%'")


def test_an_encrypted_backup_needs_the_keyring_and_refuses_an_altered_chunk(
    keyring, accounts, tmp_path, monkeypatch
):
    call_command("backup_data", "--out", str(tmp_path), "--encrypt")
    directory = tmp_path / accounts.name
    assert sorted(path.name for path in directory.glob("*.aes")) == [
        "compression_dictionaries.bin.zst.aes",
        "protected_columns.bin.zst.aes",
        "rows.bin.zst.aes",
    ]
    before = fingerprint(accounts)
    drop_everything_of(accounts)
    call_command("restore_data", str(tmp_path), "--table", accounts.name)
    assert fingerprint(accounts) == before

    monkeypatch.delenv("FDM_ENCRYPTION_KEYS")
    with pytest.raises(
        CommandError, match=f"{accounts.name}: rows.bin.zst.aes: the file is encrypted; set FDM_"
    ):
        call_command("restore_data", str(directory))
    monkeypatch.setenv("FDM_ENCRYPTION_KEYS", keyring.format())
    # Alter a sealed byte and make the manifest's hashes agree: the chunk no longer opens.
    from syncengine.pipeline.archive.files import file_sha256

    path = _rows_file(directory)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))
    manifest = json.loads((directory / MANIFEST).read_text())
    manifest["files"][path.name]["sha256"] = file_sha256(path)[0]
    (directory / MANIFEST).write_text(json.dumps(manifest))
    (directory / MANIFEST_HASH).write_text(f"{file_sha256(directory / MANIFEST)[0]}  {MANIFEST}\n")
    with pytest.raises(CommandError, match="rows.bin.zst.aes: chunk 0 does not open with the keyring"):
        call_command("restore_data", str(directory))
    assert fingerprint(accounts) == before


def test_restore_into_another_schema_leaves_the_table_and_its_watermark_alone(accounts, tmp_path):
    call_command("backup_data", accounts.name, "--out", str(tmp_path))
    query(f'DELETE FROM public."{accounts.postgres_table}" WHERE account_id >= 30')
    before = fingerprint(accounts)
    call_command("restore_data", str(tmp_path), "--into", "restored_copy")
    try:
        assert fingerprint(accounts) == before
        assert query(f'SELECT count(*) FROM restored_copy."{accounts.postgres_table}"') == [(60,)]
    finally:
        query("DROP SCHEMA restored_copy CASCADE")
        query("DELETE FROM _fdm.protected_columns WHERE target_schema = 'restored_copy'")


def test_unknown_tables_and_missing_archives_are_one_line_errors(accounts, tmp_path):
    with pytest.raises(CommandError, match="no table named 'nope'"):
        call_command("backup_data", "nope", "--out", str(tmp_path))
    with pytest.raises(CommandError, match="no such backup directory"):
        call_command("restore_data", str(tmp_path / "missing"))
    call_command("backup_data", accounts.name, "--out", str(tmp_path))
    with pytest.raises(CommandError, match="holds no archive of table 'other'"):
        call_command("restore_data", str(tmp_path), "--table", "other")


def test_scheduled_backups_keep_the_newest(accounts, tmp_path, settings):
    settings.FDM_BACKUP_DIR = tmp_path
    settings.FDM_BACKUP_KEEP = 2
    (tmp_path / "20260101T000000Z.partial").mkdir()  # left by an interrupted backup
    (tmp_path / "keep-me").mkdir()  # not a scheduled backup: never touched
    start = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    for day in range(3):
        outcome = backups.backup_scheduled(now=start + timedelta(days=day))
    assert outcome["tables"] == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "20260302T020000Z",
        "20260303T020000Z",
        "keep-me",
    ]
    assert (tmp_path / "20260303T020000Z" / accounts.name / MANIFEST).is_file()


def test_maintenance_schedules_follow_the_settings(settings, tmp_path):
    settings.FDM_BACKUP_DIR = None
    maintenance.maintenance_schedules_ensure()
    assert not Schedule.objects.filter(func=maintenance.BACKUP_TASK).exists()
    assert Schedule.objects.filter(func=maintenance.HOUSEKEEPING_TASK).count() == 1
    settings.FDM_BACKUP_DIR = tmp_path
    settings.FDM_BACKUP_SCHEDULE = "15 1 * * *"
    maintenance.maintenance_schedules_ensure()
    maintenance.maintenance_schedules_ensure()
    schedule = Schedule.objects.get(func=maintenance.BACKUP_TASK)
    assert (schedule.cron, schedule.name, schedule.next_run.minute) == ("15 1 * * *", "fdm-backup", 15)
    # What django-q2 will call: the dotted paths resolve to the tasks.
    assert import_string(schedule.func) is maintenance.backup_task
    assert import_string(maintenance.HOUSEKEEPING_TASK) is maintenance.housekeeping_task


def test_housekeeping_purges_old_runs_and_drops_orphaned_staging(make_table, settings):
    table = make_table()
    old = SyncRun.objects.create(table=table, table_name=table.name, status=RunStatus.SUCCEEDED)
    SyncRun.objects.filter(pk=old.pk).update(queued_at=timezone.now() - timedelta(days=40))
    recent = SyncRun.objects.create(table=table, table_name=table.name, status=RunStatus.FAILED)
    settings.FDM_RUN_RETENTION_DAYS = 0
    assert maintenance.runs_purge_expired() == 0
    settings.FDM_RUN_RETENTION_DAYS = 30
    assert maintenance.runs_purge_expired() == 1
    assert list(SyncRun.objects.values_list("pk", flat=True)) == [recent.pk]

    busy = make_table()
    orphan = f"{staging_prefix('deleted_table')}0001"
    leftover = f"{staging_prefix(table.name)}0002"
    in_use = f"{staging_prefix(busy.name)}0003"
    query(f'CREATE SCHEMA IF NOT EXISTS "{STAGING_SCHEMA}"')
    for name in (orphan, leftover, in_use):
        query(f'CREATE TABLE "{STAGING_SCHEMA}"."{name}" (x int)')
    with psycopg.connect(connections.target_dsn(), autocommit=True) as running:
        assert try_lock_table(running, busy.name)  # a run of `busy` is in progress
        assert maintenance.staging_drop_orphans() == sorted([orphan, leftover])
    assert query(f"SELECT relname FROM pg_class WHERE relname = '{in_use}'") == [(in_use,)]
    query(f'DROP TABLE "{STAGING_SCHEMA}"."{in_use}"')
