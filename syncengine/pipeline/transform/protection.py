"""Column encryption and compression are configured per table but not available in this version.

Until they are, a table that asks for either is refused with a terminal error rather than synced: loading it
would write columns that are meant to be protected as plaintext.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncengine.pipeline.errors import ConfigurationError
from syncengine.pipeline.spec import CompressionMode, EncryptionMode, TableSpec

if TYPE_CHECKING:
    from syncengine.pipeline.schema.columns import TablePlan
    from syncengine.pipeline.transform import PreparedTransform


def refuse_unavailable_protection(spec: TableSpec, plan: TablePlan) -> PreparedTransform | None:
    wanted = []
    if spec.encryption.mode != EncryptionMode.OFF:
        wanted.append("encryption")
    if spec.compression.mode != CompressionMode.OFF:
        wanted.append("compression")
    if wanted:
        raise ConfigurationError(
            f"column {' and '.join(wanted)} is configured but not available in this version of fdm; the table "
            "is not synced so that protected columns are never written as plaintext (set "
            f"{' and '.join(f'{name}: false' for name in wanted)} to sync it unprotected)",
            table=spec.name,
        )
    return None
