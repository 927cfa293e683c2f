"""Connecting to Snowflake (password or key pair) from typed settings, and what failures mean. Reading the
settings from the environment is the Django side's (tests/engine/test_connections.py)."""

from __future__ import annotations

import socket

import psycopg
import pytest
import snowflake.connector
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from snowflake.connector import errors as sf_errors

from syncengine.pipeline.errors import ConfigurationError, SourceSchemaError, TransientError
from syncengine.pipeline.runner import run_sync
from syncengine.pipeline.source import SnowflakeSettings, classify_connect_error, classify_snowflake_error

SECRET = "s3cret-Value-9"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _key_file(tmp_path, passphrase: bytes | None) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    path = tmp_path / "rsa_key.p8"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return str(path)


def test_it_connects_with_an_encrypted_key_pair(snowflake_server, tmp_path):
    settings = SnowflakeSettings(
        account=snowflake_server["account"],
        user=snowflake_server["user"],
        private_key_file=_key_file(tmp_path, b"key-pass"),
        private_key_passphrase="key-pass",
        host=snowflake_server["host"],
        port=snowflake_server["port"],
        protocol=snowflake_server["protocol"],
        session_parameters=dict(snowflake_server["session_parameters"]),
    )
    kwargs = settings.connect_kwargs()
    assert kwargs["authenticator"] == "SNOWFLAKE_JWT" and isinstance(kwargs["private_key"], bytes)
    assert "password" not in kwargs
    conn = settings.connect()
    try:
        assert conn.cursor().execute("SELECT 2").fetchone() == (2,)
    finally:
        conn.close()


def test_a_wrong_key_passphrase_names_the_setting(tmp_path):
    settings = SnowflakeSettings(
        account="a",
        user="u",
        private_key_file=_key_file(tmp_path, b"right"),
        private_key_passphrase="not-the-passphrase",
    )
    with pytest.raises(ConfigurationError, match="SNOWFLAKE_PRIVATE_KEY_PASSPHRASE") as raised:
        settings.connect()
    assert "not-the-passphrase" not in str(raised.value)


def test_an_encrypted_key_without_a_passphrase_names_the_setting(tmp_path):
    settings = SnowflakeSettings(account="a", user="u", private_key_file=_key_file(tmp_path, b"right"))
    with pytest.raises(ConfigurationError, match="SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"):
        settings.connect()


def test_an_unreachable_port_is_transient():
    settings = SnowflakeSettings(
        account="acme",
        user="u",
        password=SECRET,
        host="127.0.0.1",
        port=_free_port(),
        protocol="http",
        login_timeout=2,
        network_timeout=2,
    )
    with pytest.raises(TransientError) as raised:
        settings.connect()
    assert not raised.value.terminal
    assert SECRET not in str(raised.value)


def test_the_connectors_login_failures_are_classified():
    settings = SnowflakeSettings(account="acme", user="u", password=SECRET)
    bad_password = sf_errors.DatabaseError(
        msg="Incorrect username or password was specified.", errno=390100, sqlstate="28000"
    )
    unknown_account = sf_errors.ForbiddenError(msg="HTTP 403: Forbidden", errno=540001, sqlstate="08001")
    bad_role = sf_errors.DatabaseError(
        msg="Role 'X' specified in the connect string does not exist", errno=390189
    )
    outage = sf_errors.OperationalError(msg="Could not connect to Snowflake backend", errno=250001)

    assert "SNOWFLAKE_PASSWORD" in str(classify_connect_error(bad_password, settings))
    assert "SNOWFLAKE_ACCOUNT" in str(classify_connect_error(unknown_account, settings))
    assert "SNOWFLAKE_ROLE" in str(classify_connect_error(bad_role, settings))
    assert isinstance(classify_connect_error(outage, settings), TransientError)
    for error in (bad_password, unknown_account, bad_role):
        assert isinstance(classify_connect_error(error, settings), ConfigurationError)


def test_query_failures_are_classified():
    missing = sf_errors.ProgrammingError(
        msg="Object 'X' does not exist or not authorized.", errno=2003, sqlstate="42S02"
    )
    assert isinstance(classify_snowflake_error(missing, table="t"), SourceSchemaError)
    no_warehouse = sf_errors.ProgrammingError(msg="No active warehouse selected", errno=606)
    assert "SNOWFLAKE_WAREHOUSE" in str(classify_snowflake_error(no_warehouse, table="t"))
    timeout = sf_errors.ProgrammingError(
        msg="Statement reached its statement or warehouse timeout", errno=630
    )
    assert isinstance(classify_snowflake_error(timeout, table="t"), TransientError)


def test_a_missing_source_table_is_a_source_schema_error(source, make_spec, sync, target):
    with pytest.raises(SourceSchemaError, match="does not exist"):
        sync(make_spec("NOWHERE"))
    assert target("SELECT to_regclass('public.nowhere')") == [(None,)]


def test_a_connection_factory_may_stand_in_for_settings(
    source, make_spec, snowflake_server, scratch_database, target
):
    source.sql(f"CREATE TABLE {source.table('TINY')} (ID NUMBER(38,0))")
    source.sql(f"INSERT INTO {source.table('TINY')} VALUES (1), (2)")  # noqa: S608
    opened = []

    def open_connection():
        opened.append(snowflake.connector.connect(**snowflake_server))
        return opened[-1]

    result = run_sync(make_spec("TINY"), source=open_connection, target_dsn=scratch_database)
    assert result.rows_inserted == 2
    assert opened[0].arrow_number_to_decimal  # exact decimals even when the caller did not ask for them


def test_an_unreachable_target_is_transient_and_a_missing_database_is_configuration(
    settings, make_spec, pg_server_url
):
    info = psycopg.conninfo.conninfo_to_dict(pg_server_url)
    unreachable = psycopg.conninfo.make_conninfo(
        **(info | {"port": str(_free_port()), "connect_timeout": "2"})
    )
    with pytest.raises(TransientError):
        run_sync(make_spec("ANY"), source=settings, target_dsn=unreachable)

    missing = psycopg.conninfo.make_conninfo(**(info | {"dbname": "fdm_no_such_database"}))
    with pytest.raises(ConfigurationError, match="does not exist"):
        run_sync(make_spec("ANY"), source=settings, target_dsn=missing)
