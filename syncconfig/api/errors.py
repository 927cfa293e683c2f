"""How configuration problems read in the API: 400 `validation_error`, each problem under its YAML key path."""

from __future__ import annotations

from collections.abc import Iterable

from rest_framework import status

from fdm.api.errors import ApiError
from syncconfig.schema import ConfigError
from syncconfig.services import ProtectionDenied, TableRejected


def config_rejected(
    errors: Iterable[ConfigError], *, message: str = "The table is invalid.", document: bool = False
) -> ApiError:
    """400 for problems the shared configuration schema found; each names its key path as the YAML does:
    inside the table (`snowflake.table`), or for a whole document with the table's place (`tables[1] fx.name`)."""
    return ApiError(
        message,
        code="validation_error",
        status_code=status.HTTP_400_BAD_REQUEST,
        details=[(error.location if document else error.field, error.message) for error in errors],
    )


def table_rejected(error: TableRejected) -> ApiError:
    """A table dict that the services refused, wherever a view passes one to them."""
    return config_rejected(error.errors)


def protection_denied(error: ProtectionDenied) -> ApiError:
    """403: the change weakens the protection of sensitive columns and the caller's role is below admin."""
    return ApiError(
        "The change weakens the protection of sensitive columns, which needs the admin role.",
        code="permission_denied",
        status_code=status.HTTP_403_FORBIDDEN,
        details=[(error.field, error.message) for error in error.errors],
    )
