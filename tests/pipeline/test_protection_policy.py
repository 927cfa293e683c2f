"""The per-source protection policy as a run applies it: a column another table encrypts is never loaded in
clear, whatever this table's own configuration says, unless an exception is recorded."""

from __future__ import annotations

import pytest

from syncengine.pipeline.errors import ConfigurationError
from syncengine.pipeline.protection.plan import plan_protection
from syncengine.pipeline.protection.policy import check_policy
from syncengine.pipeline.schema.columns import plan_columns
from syncengine.pipeline.spec import (
    EncryptedElsewhere,
    EncryptionMode,
    EncryptionSpec,
    SourceRef,
    TableSpec,
    TargetRef,
)
from syncengine.pipeline.typemap import SourceColumn

SOURCE = [
    SourceColumn("TXN_ID", "NUMBER", precision=38, scale=0, nullable=False),
    SourceColumn("IBAN", "TEXT", length=34),
    SourceColumn("AMOUNT", "NUMBER", precision=18, scale=2),
]


def check(**spec_fields) -> None:
    spec = TableSpec(
        name="copy",
        source=SourceRef("DB", "S", "LEDGER"),
        target=TargetRef("public", "copy"),
        primary_key=("TXN_ID",),
        **spec_fields,
    )
    plan = plan_columns(spec, SOURCE, ())
    _, protection = plan_protection(spec, plan)
    check_policy(spec, plan, protection)


LISTED = EncryptedElsewhere(table="ledger", columns=("iban",))  # a plain name matches IBAN
EVERYTHING = EncryptedElsewhere(table="vault", columns=("TXN_ID",), every_column=True)


def test_a_column_encrypted_elsewhere_stops_the_run_with_a_terminal_error_naming_it():
    with pytest.raises(ConfigurationError) as caught:
        check(encrypted_elsewhere=(LISTED,))
    assert caught.value.terminal
    assert "'IBAN' in clear, but table 'ledger' encrypts it" in str(caught.value)


def test_encrypting_it_here_too_or_an_exception_lets_the_run_go_on():
    check(encrypted_elsewhere=(LISTED,), encryption=EncryptionSpec(EncryptionMode.COLUMNS, ("IBAN",)))
    check(encrypted_elsewhere=(LISTED,), clear_columns=("iban",))
    check(encrypted_elsewhere=(LISTED,), exclude_columns=("IBAN",))


def test_a_table_that_encrypts_every_column_protects_all_but_its_key():
    with pytest.raises(ConfigurationError, match="'AMOUNT' in clear"):
        check(encrypted_elsewhere=(EVERYTHING,), encryption=EncryptionSpec(EncryptionMode.COLUMNS, ("IBAN",)))
    check(encrypted_elsewhere=(EVERYTHING,), encryption=EncryptionSpec(EncryptionMode.ALL))
    keyed_on_declared = EncryptedElsewhere(
        table="vault", columns=(), every_column=True, keeps_declared_key=True
    )
    check(encrypted_elsewhere=(keyed_on_declared,), encryption=EncryptionSpec(EncryptionMode.ALL))
