"""The per-source protection policy, checked when a run plans: once a source column is encrypted by one table,
no other table may write it in clear unless an admin recorded an exception (`clear_columns`).

Configuration refuses such a table when it is saved (syncconfig.protection); this check covers what changed
since, such as another table starting to encrypt the same source, so no run writes a protected column in clear.
"""

from __future__ import annotations

from syncengine.pipeline import identifiers
from syncengine.pipeline.errors import ConfigurationError
from syncengine.pipeline.protection.plan import ProtectionPlan
from syncengine.pipeline.schema.columns import TablePlan
from syncengine.pipeline.spec import EncryptedElsewhere, TableSpec


def _named(actual: str, configured: tuple[str, ...]) -> bool:
    """Whether the source column `actual` is one of the configured names (Snowflake's rules)."""
    return any(identifiers.matches(name, actual) for name in configured)


def _encrypted_there(column: str, other: EncryptedElsewhere, key: tuple[str, ...]) -> bool:
    listed = _named(column, other.columns)
    if not other.every_column:
        return listed
    return not listed and not (other.keeps_declared_key and column in key)


def check_policy(spec: TableSpec, plan: TablePlan, protection: ProtectionPlan | None) -> None:
    """Raise a terminal ConfigurationError when the run would load in clear a column another table encrypts.

    `plan` is the table's column plan before protection (its loaded source columns), `protection` the plan
    that protects some of them.
    """
    if not spec.encrypted_elsewhere:
        return
    encrypted = (
        {column.source_name for column in protection.columns if column.encrypted} if protection else set()
    )
    for column in plan.columns:
        name = column.source_name
        if column.derived or name in encrypted or _named(name, spec.clear_columns):
            continue
        for other in spec.encrypted_elsewhere:
            if _encrypted_there(name, other, plan.primary_key):
                raise ConfigurationError(
                    f"this table would store {name!r} in clear, but table {other.table!r} encrypts it: encrypt it "
                    "here too, or have an admin record an exception with its reason in clear_columns",
                    table=spec.name,
                    column=name,
                )
