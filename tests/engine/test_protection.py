"""Encrypted tables on the Django side: runs that record no plaintext, the start-up keyring check, decrypted
reads with their permission and audit record, the keyring, rotation and decrypt commands, and the table's
admin page showing the keys in use."""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants

from __future__ import annotations

import csv
import importlib
import io
import json
import os
import pwd
import socket
from decimal import Decimal

import psycopg
import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from syncengine import connections, protected_data, services
from syncengine.choices import RunStatus, RunTrigger
from syncengine.models import DecryptedRead, SyncRun
from syncengine.pipeline.protection.crypto import key_id_of
from syncengine.pipeline.protection.keyring import Keyring
from syncengine.pipeline.protection.reader import MASK
from tests.pipeline.test_protection import store_as_version_1

pytestmark = pytest.mark.django_db

SECRETS = ["NL91ABNA0417164300", "BE68539007547034"]


@pytest.fixture
def accounts(make_table, snowflake):
    """A table of 40 accounts whose IBAN and holder name are encrypted (IBAN searchable), notes compressed."""
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
        [(i, SECRETS[i % 2], f"Holder {i:03d} Secretname", "opened at branch 12 " * 5) for i in range(40)],
    )
    return table


def execute(table) -> SyncRun:
    run = services.run_create(table=table, trigger=RunTrigger.COMMAND)
    return services.run_execute(run_id=run.pk)


def _user(name: str, *, decrypt: bool) -> User:
    user = User.objects.create_user(name, password="x-unused-x")
    if decrypt:
        user.user_permissions.add(Permission.objects.get(codename="read_decrypted"))
    return User.objects.get(pk=user.pk)  # permissions are cached per instance


def test_a_run_of_an_encrypted_table_records_no_plaintext_and_its_compression(keyring, accounts, target):
    run = execute(accounts)
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    record = json.dumps(
        {field.name: getattr(run, field.name) for field in SyncRun._meta.concrete_fields}, default=str
    )
    for secret in [*SECRETS, "Secretname"]:
        assert secret not in record
    assert keyring.format().split(":")[1] not in record
    assert run.bytes_before_compression == 40 * len("opened at branch 12 " * 5)
    assert 0 < run.bytes_after_compression < run.bytes_before_compression
    assert run.checks["protection"]["notes"]["compression_ratio"] > 1
    stored = target(f'SELECT iban FROM public."{accounts.postgres_table}" ORDER BY account_id LIMIT 1')[0][0]
    assert key_id_of(bytes(stored)) == "k1"


def test_a_run_without_the_keyring_fails_naming_the_setting(monkeypatch, accounts):
    monkeypatch.delenv("FDM_ENCRYPTION_KEYS", raising=False)
    monkeypatch.delenv("FDM_ENCRYPTION_KEYS_FILE", raising=False)
    run = execute(accounts)
    assert run.status == RunStatus.FAILED
    assert "FDM_ENCRYPTION_KEYS is not set" in run.error_message


def test_startup_refuses_a_missing_or_malformed_keyring_when_a_table_encrypts(monkeypatch, accounts):
    monkeypatch.delenv("FDM_ENCRYPTION_KEYS", raising=False)
    monkeypatch.delenv("FDM_ENCRYPTION_KEYS_FILE", raising=False)
    with pytest.raises(SystemCheckError, match=rf"fdm.E002.*{accounts.name}"):
        call_command("check")
    monkeypatch.setenv("FDM_ENCRYPTION_KEYS", "k1:tooshort")
    with pytest.raises(SystemCheckError, match="fdm.E001.*key 'k1' is 6 bytes long"):
        call_command("check")
    monkeypatch.setenv("FDM_ENCRYPTION_KEYS", Keyring.generate("k1").format())
    call_command("check")


def test_decrypted_reads_need_the_permission_and_are_audited(keyring, accounts):
    assert execute(accounts).status == RunStatus.SUCCEEDED
    viewer = _user("viewer", decrypt=False)
    reader = _user("auditor", decrypt=True)

    masked = protected_data.table_rows_read(table=accounts, user=viewer, decrypt=False, limit=3, via="api")
    assert [row["iban"] for row in masked.rows] == [MASK] * 3
    assert masked.rows[0]["notes"] == "opened at branch 12 " * 5  # compressed, not secret
    with pytest.raises(PermissionDenied):
        protected_data.table_rows_read(table=accounts, user=viewer, decrypt=True, via="api")
    with pytest.raises(PermissionDenied, match="iban"):
        protected_data.table_rows_read(
            table=accounts, user=viewer, decrypt=False, filters={"iban": SECRETS[0]}, via="api"
        )
    assert not DecryptedRead.objects.exists()

    page = protected_data.table_rows_read(
        table=accounts,
        user=reader,
        decrypt=True,
        filters={"iban": SECRETS[1]},
        limit=100,
        via="api",
        client="10.0.0.9",
    )
    assert [row["account_id"] for row in page.rows] == [Decimal(i) for i in range(1, 40, 2)]
    assert page.rows[0]["holder_name"] == "Holder 001 Secretname"
    audit = DecryptedRead.objects.get()
    assert (
        audit.username,
        audit.table_name,
        audit.columns,
        audit.filtered_columns,
        audit.row_count,
        audit.via,
    ) == (
        "auditor",
        accounts.name,
        ["iban", "holder_name"],
        ["iban"],
        20,
        "api",
    )
    assert SECRETS[1] not in json.dumps(
        {field.name: str(getattr(audit, field.name)) for field in DecryptedRead._meta.concrete_fields}
    )


def test_a_renamed_table_reads_masked_decrypted_and_decompressed_as_before(keyring, accounts, target):
    assert execute(accounts).status == RunStatus.SUCCEEDED
    accounts.name = "renamed_accounts"  # an admin renames fdm's table; its target stays
    accounts.save()
    viewer = _user("viewer", decrypt=False)
    auditor = _user("auditor", decrypt=True)

    masked = protected_data.table_rows_read(table=accounts, user=viewer, decrypt=False, limit=3, via="api")
    assert masked.columns == ["account_id", "iban", "holder_name", "notes"]
    assert [(row["iban"], row["holder_name"]) for row in masked.rows] == [(MASK, MASK)] * 3
    assert masked.rows[0]["notes"] == "opened at branch 12 " * 5
    assert all("iban_bidx" not in row for row in masked.rows)

    clear = protected_data.table_rows_read(
        table=accounts, user=auditor, decrypt=True, filters={"iban": SECRETS[0]}, limit=100, via="api"
    )
    assert "iban_bidx" not in clear.columns
    assert [row["account_id"] for row in clear.rows] == [Decimal(i) for i in range(0, 40, 2)]
    assert clear.rows[1]["holder_name"] == "Holder 002 Secretname"
    assert clear.rows[1]["notes"] == "opened at branch 12 " * 5

    # Even with its catalog rows gone, the blind index column is never listed.
    assert target("DELETE FROM _fdm.protected_columns RETURNING column_name")
    bare = protected_data.table_rows_read(table=accounts, user=viewer, decrypt=False, limit=3, via="api")
    assert "iban_bidx" not in bare.columns and all("iban_bidx" not in row for row in bare.rows)


def test_generate_keyring_prints_a_usable_keyring_as_its_last_line(monkeypatch):
    out = io.StringIO()
    call_command("generate_keyring", "--key-id", "first", stdout=out)
    first = Keyring.parse(out.getvalue().strip().splitlines()[-1])
    assert first.ids == ("first",)

    monkeypatch.setenv("FDM_ENCRYPTION_KEYS", first.format())
    out = io.StringIO()
    call_command("generate_keyring", "--rotate", "--key-id", "second", stdout=out)
    rotated = Keyring.parse(out.getvalue().strip().splitlines()[-1])
    assert rotated.ids == ("second", "first") and rotated.key("first") == first.key("first")


def test_rotate_keys_moves_every_value_to_the_new_primary_key(monkeypatch, keyring, accounts, target):
    assert execute(accounts).status == RunStatus.SUCCEEDED
    monkeypatch.setenv("FDM_ENCRYPTION_KEYS", keyring.with_new_primary("k2").format())
    out = io.StringIO()
    call_command("rotate_keys", "--table", accounts.name, stdout=out)
    assert "80 value(s) re-encrypted" in out.getvalue()
    assert "100.0% on the primary key k2 and the current format (v2)" in out.getvalue()
    ids = {
        key_id_of(bytes(value)) for (value,) in target(f'SELECT iban FROM public."{accounts.postgres_table}"')
    }
    assert ids == {"k2"}
    usage = protected_data.table_key_usage(table=accounts)
    assert usage is not None and usage.remaining == 0 and usage.key_ids == ["k2"]


def test_rotate_keys_moves_values_of_the_older_format_on_the_primary_key_to_the_current_one(
    keyring, accounts, target
):
    assert execute(accounts).status == RunStatus.SUCCEEDED
    store_as_version_1(
        connections.target_dsn(),
        table=accounts.postgres_table,
        key="account_id",
        searchable={"iban": "iban_bidx"},
        keyring=keyring,
    )
    auditor = _user("auditor", decrypt=True)

    def search() -> list:
        page = protected_data.table_rows_read(
            table=accounts, user=auditor, decrypt=True, filters={"iban": SECRETS[1]}, limit=100, via="api"
        )
        return [row["account_id"] for row in page.rows]

    assert search() == [Decimal(i) for i in range(1, 40, 2)]
    # As a catalog from before blind index versions left it: read as version 1, upgraded by the rotation.
    with psycopg.connect(connections.target_dsn(), autocommit=True) as conn:
        conn.execute("ALTER TABLE _fdm.protected_columns DROP COLUMN blind_index_version")
    assert search() == [Decimal(i) for i in range(1, 40, 2)]
    out = io.StringIO()
    call_command("rotate_keys", "--table", accounts.name, stdout=out)
    assert "80 value(s) re-encrypted" in out.getvalue()
    assert "100.0% on the primary key k1 and the current format (v2)" in out.getvalue()
    versions = target(
        f'SELECT DISTINCT get_byte(iban, 0), get_byte(holder_name, 0) FROM public."{accounts.postgres_table}"'
    )
    assert versions == [(2, 2)]
    assert search() == [Decimal(i) for i in range(1, 40, 2)]


def test_the_decrypt_command_prints_rows_and_records_the_read(keyring, accounts):
    assert execute(accounts).status == RunStatus.SUCCEEDED
    _user("auditor", decrypt=True)
    out = io.StringIO()
    call_command(
        "decrypt",
        accounts.name,
        "--user",
        "auditor",
        "--where",
        f"iban={SECRETS[0]}",
        "--limit",
        "3",
        stdout=out,
    )
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [row["account_id"] for row in rows] == ["0", "2", "4"]
    assert {row["iban"] for row in rows} == {SECRETS[0]}
    assert DecryptedRead.objects.get().via == "command"

    _user("nobody", decrypt=False)
    with pytest.raises(CommandError, match="needs the permission"):
        call_command("decrypt", accounts.name, "--user", "nobody")


def test_the_decrypt_command_neutralises_formulas_in_csv_and_records_the_os_account(
    keyring, accounts, snowflake, monkeypatch
):
    name = f"FDM_ENGINE.PUBLIC.{accounts.snowflake_table}"
    snowflake.execute(
        f"INSERT INTO {name} VALUES (99, %s, %s, %s)",
        (SECRETS[0], '=HYPERLINK("http://x.test","open")', "@SUM(A1)"),
    )
    assert execute(accounts).status == RunStatus.SUCCEEDED
    _user("auditor", decrypt=True)
    for variable in ("LOGNAME", "USER", "LNAME", "USERNAME"):  # what getpass would believe
        monkeypatch.setenv(variable, "mallory")
    out = io.StringIO()
    call_command(
        "decrypt",
        accounts.name,
        "--user",
        "auditor",
        "--where",
        "account_id=99",
        "--format",
        "csv",
        stdout=out,
    )
    header, row = list(csv.reader(io.StringIO(out.getvalue())))
    cells = dict(zip(header, row, strict=True))
    assert cells["holder_name"] == '\'=HYPERLINK("http://x.test","open")'
    assert cells["notes"] == "'@SUM(A1)"
    assert cells["account_id"] == "99"
    # The account of the process's user id, whatever the environment says.
    assert DecryptedRead.objects.get().client == f"{pwd.getpwuid(os.getuid()).pw_name}@{socket.gethostname()}"


def test_the_table_page_shows_protected_columns_keys_in_use_and_rotation_progress(
    client, monkeypatch, keyring, accounts
):
    assert execute(accounts).status == RunStatus.SUCCEEDED
    monkeypatch.setenv("FDM_ENCRYPTION_KEYS", keyring.with_new_primary("k2").format())
    client.force_login(User.objects.create_superuser("root", "root@example.com", "x-unused-x"))
    page = client.get(f"/admin/syncconfig/tableconfig/{accounts.pk}/change/").content.decode()
    assert "Stored protection and keys" in page
    assert "iban_bidx (16 bits)" in page
    assert "k1: 40" in page
    assert "0 of 80 encrypted values" in page and "(0.0%) on the primary key" in page
    assert f"rotate_keys --table {accounts.name}" in page


def test_decrypted_reads_are_listed_read_only_in_the_admin(client, keyring, accounts):
    assert execute(accounts).status == RunStatus.SUCCEEDED
    auditor = _user("auditor", decrypt=True)
    protected_data.table_rows_read(table=accounts, user=auditor, decrypt=True, limit=5, via="command")
    client.force_login(User.objects.create_superuser("root", "root@example.com", "x-unused-x"))
    listing = client.get("/admin/syncengine/decryptedread/")
    assert listing.status_code == 200
    assert "auditor" in listing.content.decode() and "iban, holder_name" in listing.content.decode()
    record = DecryptedRead.objects.get()
    assert client.get(f"/admin/syncengine/decryptedread/{record.pk}/delete/").status_code == 403
    assert client.get("/admin/syncengine/decryptedread/add/").status_code == 403


def test_configuration_commands_run_before_the_keyring_exists_and_data_commands_do_not(monkeypatch, accounts):
    monkeypatch.delenv("FDM_ENCRYPTION_KEYS", raising=False)
    monkeypatch.delenv("FDM_ENCRYPTION_KEYS_FILE", raising=False)
    out = io.StringIO()
    call_command("generate_keyring", skip_checks=False, stdout=out)
    assert Keyring.parse(out.getvalue().splitlines()[-1])
    call_command("export_tables", skip_checks=False, stdout=io.StringIO())
    with pytest.raises(SystemCheckError, match="fdm.E002"):
        call_command("rotate_keys", skip_checks=False, stdout=io.StringIO())


def test_the_migration_takes_plaintext_sizes_of_encrypted_columns_out_of_earlier_run_records(
    keyring, accounts
):
    current = execute(accounts)
    assert current.status == RunStatus.SUCCEEDED
    kept = SyncRun.objects.get(pk=current.pk).checks
    notes = {"bytes_plain": 4000, "bytes_compressed": 520, "bytes_stored": 520, "compression_ratio": 7.692}
    earlier = services.run_create(table=accounts, trigger=RunTrigger.COMMAND)
    SyncRun.objects.filter(pk=earlier.pk).update(
        # As runs recorded them before: plaintext sizes of every protected column, in the totals as well.
        checks={
            "rows_extracted": 40,
            "protection": {
                "iban": {
                    "bytes_plain": 720,
                    "bytes_compressed": 0,
                    "bytes_stored": 2560,
                    "compression_ratio": None,
                },
                "holder_name": {  # encrypted and compressed: envelopes around the frames
                    "bytes_plain": 960,
                    "bytes_compressed": 610,
                    "bytes_stored": 1920,
                    "compression_ratio": 1.574,
                },
                "notes": notes,  # compressed only: it stores its frames
            },
        },
        bytes_before_compression=4960,
        bytes_after_compression=1130,
    )

    name = "0007_run_checks_without_encrypted_sizes"
    scrub = importlib.import_module(f"syncengine.migrations.{name}").scrub
    scrub(MigrationLoader(connection).project_state(("syncengine", name)).apps, None)

    earlier = SyncRun.objects.get(pk=earlier.pk)
    assert earlier.checks == {
        "rows_extracted": 40,
        "protection": {
            "iban": {"encrypted": True, "bytes_stored": 2560},
            "holder_name": {"encrypted": True, "bytes_stored": 1920},
            "notes": notes,
        },
    }
    assert (earlier.bytes_before_compression, earlier.bytes_after_compression) == (4000, 520)
    assert SyncRun.objects.get(pk=current.pk).checks == kept  # recorded without them already
