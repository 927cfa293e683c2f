"""Connection settings from the environment: Snowflake's and the keyring, each setting by the one rule of
`fdm.env` (a value, or the file `<NAME>_FILE` names), with errors that name the setting and never its value."""

from __future__ import annotations

import pytest

from syncengine import connections
from syncengine.pipeline.errors import ConfigurationError
from syncengine.pipeline.protection.keyring import Keyring, KeyringError

SECRET = "s3cret-Value-9"
BASE = {"SNOWFLAKE_ACCOUNT": "acme-prod", "SNOWFLAKE_USER": "fdm_loader", "SNOWFLAKE_PASSWORD": SECRET}


def test_it_reads_every_setting():
    settings = connections.snowflake_settings(
        BASE
        | {
            "SNOWFLAKE_ROLE": "LOADER",
            "SNOWFLAKE_WAREHOUSE": "ETL_WH",
            "SNOWFLAKE_HOST": "127.0.0.1",
            "SNOWFLAKE_PORT": "8080",
            "SNOWFLAKE_PROTOCOL": "HTTP",
            "SNOWFLAKE_SESSION_PARAMETERS": '{"QUERY_TAG": "fdm"}',
        }
    )
    assert (settings.account, settings.user, settings.password) == ("acme-prod", "fdm_loader", SECRET)
    assert (settings.role, settings.warehouse, settings.host, settings.port, settings.protocol) == (
        "LOADER",
        "ETL_WH",
        "127.0.0.1",
        8080,
        "http",
    )
    kwargs = settings.connect_kwargs()
    assert kwargs["session_parameters"] == {"QUERY_TAG": "fdm", "TIMEZONE": "UTC"}
    assert kwargs["arrow_number_to_decimal"] is True
    assert SECRET not in repr(settings)


def test_a_missing_account_names_the_setting_without_echoing_the_password():
    with pytest.raises(ConfigurationError) as raised:
        connections.snowflake_settings({k: v for k, v in BASE.items() if k != "SNOWFLAKE_ACCOUNT"})
    assert "SNOWFLAKE_ACCOUNT" in str(raised.value)
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_PASSWORD": SECRET}, "SNOWFLAKE_USER"),
        ({"SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_USER": "u"}, "SNOWFLAKE_PASSWORD"),
        (BASE | {"SNOWFLAKE_PRIVATE_KEY_FILE": "/keys/fdm.p8"}, "SNOWFLAKE_PRIVATE_KEY_FILE"),
        (BASE | {"SNOWFLAKE_PORT": "eighty"}, "SNOWFLAKE_PORT"),
        (BASE | {"SNOWFLAKE_PROTOCOL": "ftp"}, "SNOWFLAKE_PROTOCOL"),
        (BASE | {"SNOWFLAKE_SESSION_PARAMETERS": "[1]"}, "SNOWFLAKE_SESSION_PARAMETERS"),
        (
            BASE | {"SNOWFLAKE_ACCOUNT": "", "SNOWFLAKE_ACCOUNT_FILE": "/nonexistent/account"},
            "SNOWFLAKE_ACCOUNT_FILE",
        ),
    ],
)
def test_bad_settings_name_the_setting(environ, named):
    with pytest.raises(ConfigurationError) as raised:
        connections.snowflake_settings(environ)
    assert named in str(raised.value)
    assert SECRET not in str(raised.value)


def test_the_password_may_come_from_a_file(tmp_path):
    secret_file = tmp_path / "password"
    secret_file.write_text(SECRET + "\n")
    environ = {k: v for k, v in BASE.items() if k != "SNOWFLAKE_PASSWORD"} | {
        "SNOWFLAKE_PASSWORD_FILE": str(secret_file)
    }
    assert connections.snowflake_settings(environ).password == SECRET


def test_it_connects_from_the_environment(snowflake_env):
    settings = connections.snowflake_settings()
    conn = settings.connect()
    try:
        cursor = conn.cursor()
        assert cursor.execute("SELECT 1").fetchone() == (1,)
    finally:
        conn.close()


def test_keyring_comes_from_the_environment_or_a_file(tmp_path):
    keyring = Keyring.generate("k1")
    path = tmp_path / "keys"
    path.write_text(keyring.format() + "\n")
    assert connections.keyring(environ={"FDM_ENCRYPTION_KEYS_FILE": str(path)}, required=True) == keyring
    assert connections.keyring(environ={"FDM_ENCRYPTION_KEYS": keyring.format()}, required=True) == keyring
    assert connections.keyring(environ={}, required=False) is None
    with pytest.raises(KeyringError, match="FDM_ENCRYPTION_KEYS is not set"):
        connections.keyring(environ={}, required=True)


def test_values_and_files_are_stripped_and_an_empty_value_falls_back_to_the_file(tmp_path):
    secret_file = tmp_path / "password"
    secret_file.write_text(f"  {SECRET}\n")
    environ = BASE | {
        "SNOWFLAKE_ROLE": " LOADER ",
        "SNOWFLAKE_PASSWORD": "",
        "SNOWFLAKE_PASSWORD_FILE": str(secret_file),
    }
    settings = connections.snowflake_settings(environ)
    assert (settings.role, settings.password) == ("LOADER", SECRET)


def test_a_blank_value_or_an_empty_file_is_an_error_naming_the_setting(tmp_path):
    with pytest.raises(ConfigurationError, match="SNOWFLAKE_ROLE is blank"):
        connections.snowflake_settings(BASE | {"SNOWFLAKE_ROLE": "   "})
    empty = tmp_path / "password"
    empty.write_text("\n")
    environ = {k: v for k, v in BASE.items() if k != "SNOWFLAKE_PASSWORD"}
    with pytest.raises(ConfigurationError, match="SNOWFLAKE_PASSWORD_FILE: .* is empty"):
        connections.snowflake_settings(environ | {"SNOWFLAKE_PASSWORD_FILE": str(empty)})
    with pytest.raises(KeyringError, match="FDM_ENCRYPTION_KEYS is blank"):
        connections.keyring(environ={"FDM_ENCRYPTION_KEYS": " "}, required=False)


def test_a_keyring_file_that_cannot_be_read_or_parsed_is_named(tmp_path):
    with pytest.raises(KeyringError, match="FDM_ENCRYPTION_KEYS_FILE: cannot read"):
        connections.keyring(environ={"FDM_ENCRYPTION_KEYS_FILE": str(tmp_path / "missing")}, required=False)
    path = tmp_path / "keys"
    path.write_text("k1:tooshort")
    with pytest.raises(KeyringError, match=r"FDM_ENCRYPTION_KEYS_FILE \(.*keys\): key 'k1'"):
        connections.keyring(environ={"FDM_ENCRYPTION_KEYS_FILE": str(path)}, required=False)
