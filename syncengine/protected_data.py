"""Reading synced rows through fdm, and the keys that protect them: the services the API, the `decrypt`
command and the admin use.

Decrypted values are for users who hold the permission `syncengine.read_decrypted` (superusers and the API's
admin role have it); every such read leaves a `DecryptedRead` audit record. Everyone else who may read a
table sees encrypted columns masked, and cannot filter on them (a filter would answer "does anyone have this
IBAN?" without decrypting anything).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from django.core.exceptions import PermissionDenied

from syncconfig.models import TableConfig
from syncengine import connections
from syncengine.models import DecryptedRead
from syncengine.pipeline.bootstrap import ensure_schemas
from syncengine.pipeline.errors import PipelineError
from syncengine.pipeline.postgres import classify_postgres_error, connect
from syncengine.pipeline.protection import reader, rotation
from syncengine.pipeline.protection.catalog import read_catalog
from syncengine.pipeline.protection.keyring import Keyring, KeyringError
from syncengine.pipeline.protection.plan import ColumnProtection

logger = logging.getLogger(__name__)

READ_DECRYPTED = "syncengine.read_decrypted"


def can_read_decrypted(user: Any) -> bool:
    return bool(user is not None and user.is_active and user.has_perm(READ_DECRYPTED))


class EncryptedFilterInUrl(reader.ReadError):
    """A filter on an encrypted column arrived where its value would be logged (a URL's query string)."""


def table_rows_read(
    *,
    table: TableConfig,
    user: Any,
    decrypt: bool,
    filters: Mapping[str, str] | None = None,
    after: Sequence[Any] | None = None,
    limit: int = 100,
    via: str,
    client: str = "",
    encrypted_filters: bool = True,
) -> reader.Page:
    """A page of the table's rows as PostgreSQL holds them, protected columns decoded.

    1. `decrypt` needs the permission `syncengine.read_decrypted` (PermissionDenied otherwise), and so does a
       filter on an encrypted column; with `encrypted_filters` False such a filter is refused outright
       (EncryptedFilterInUrl), for callers whose filters travel in URLs.
    2. Read the page from the target database (`pipeline.reader`), with the keyring from the environment.
    3. When encrypted columns were returned in clear or filtered on (the candidates are decrypted to compare,
       so a masked answer still tells whether a value exists), record who read what, when and how.
    """
    allowed = can_read_decrypted(user)
    if decrypt and not allowed:
        raise PermissionDenied("reading decrypted values needs the permission syncengine.read_decrypted")
    filters = dict(filters or {})
    keyring = connections.keyring(required=False)
    try:
        with connect(connections.target_dsn(), application_name=f"fdm read {table.name}") as conn:
            _check_filters(conn, table, filters, allowed=allowed, encrypted_filters=encrypted_filters)
            page = reader.read_rows(
                conn,
                table_name=table.name,
                schema=table.postgres_schema,
                table=table.postgres_table,
                keyring=keyring,
                decrypt=decrypt,
                filters=filters,
                after=after,
                limit=limit,
            )
    except psycopg.Error as exc:  # the target failed mid-read: transient or terminal, as for a sync
        raise classify_postgres_error(exc, table=table.name) from exc
    if page.decrypted_columns or page.searched_columns:
        _audit(user, table, page, filters=filters, via=via, client=client)
    return page


def _check_filters(
    conn: psycopg.Connection,
    table: TableConfig,
    filters: Mapping[str, str],
    *,
    allowed: bool,
    encrypted_filters: bool,
) -> None:
    if not filters:
        return
    catalog = read_catalog(conn, table.postgres_schema, table.postgres_table)
    encrypted = {column.target_name for column in catalog.columns if column.encrypted} if catalog else set()
    refused = sorted(encrypted & set(filters))
    if not refused:
        return
    if not allowed:
        raise PermissionDenied(
            f"filtering on encrypted column(s) {', '.join(refused)} needs the permission syncengine.read_decrypted"
        )
    if not encrypted_filters:
        raise EncryptedFilterInUrl(
            f"a filter on encrypted column {refused[0]!r} must not travel in a URL, where proxies and servers log "
            "it: send it in the body of a POST to the table's search endpoint",
            table=table.name,
            column=refused[0],
        )


def _audit(
    user: Any, table: TableConfig, page: reader.Page, *, filters: Mapping[str, str], via: str, client: str
) -> None:
    DecryptedRead.objects.create(
        user=user if getattr(user, "pk", None) else None,
        username=getattr(user, "username", "") or "",
        table_name=table.name,
        columns=page.decrypted_columns,
        filtered_columns=sorted(filters),
        row_count=len(page.rows),
        via=via,
        client=client[:200],
    )
    logger.info(
        "%s read %d row(s) of %s (decrypted: %s; searched: %s) via %s",
        getattr(user, "username", "?"),
        len(page.rows),
        table.name,
        ", ".join(page.decrypted_columns) or "-",
        ", ".join(page.searched_columns) or "-",
        via,
    )


@dataclass
class ProtectionStatus:
    """What the table's admin page shows: the stored protection of each column, and the keys in use."""

    columns: list[ColumnProtection] = field(default_factory=list)
    usage: rotation.KeyUsage | None = None
    primary: str | None = None
    keyring_ids: list[str] = field(default_factory=list)
    problem: str = ""  # why some of it could not be read (no keyring, target unreachable, slow count)

    @property
    def rows(self) -> list[tuple[ColumnProtection, str]]:
        """Each column with its key ids in use, as text ("k2: 980, k1: 20")."""
        counts = self.usage.columns if self.usage else {}
        return [
            (
                column,
                ", ".join(
                    f"{key_id}: {count}" for key_id, count in counts.get(column.target_name, {}).items()
                )
                or ("no values" if column.encrypted and self.usage else "-"),
            )
            for column in self.columns
        ]


def table_protection_status(*, table: TableConfig, timeout_seconds: float = 5.0) -> ProtectionStatus:
    """The protection catalog and the key usage of the table's target, bounded by a statement timeout so that
    a page view never waits long on counting a large table."""
    status = ProtectionStatus()
    try:
        keyring = connections.keyring(required=False)
    except KeyringError as exc:
        status.problem = str(exc)
        keyring = None
    if keyring is not None:
        status.primary = keyring.primary
        status.keyring_ids = list(keyring.ids)
    try:
        with connect(connections.target_dsn(), application_name=f"fdm status {table.name}") as conn:
            conn.execute(
                "SELECT set_config('statement_timeout', %s, false)", (f"{int(timeout_seconds * 1000)}ms",)
            )
            catalog = read_catalog(conn, table.postgres_schema, table.postgres_table)
            if catalog is None:
                return status
            status.columns = list(catalog.columns)
            if any(column.encrypted for column in catalog.columns):
                status.usage = rotation.key_usage(conn, catalog, primary=status.primary)
    except psycopg.errors.QueryCanceled:
        status.problem = "counting the key ids took too long; `manage.py rotate_keys` reports them"
    except (psycopg.Error, PipelineError) as exc:
        status.problem = f"cannot read the target database: {exc}"
    return status


def table_key_usage(*, table: TableConfig) -> rotation.KeyUsage | None:
    """Which key ids the table's stored values use, per encrypted column (None: nothing encrypted yet)."""
    keyring = connections.keyring(required=False)
    with connect(connections.target_dsn(), application_name=f"fdm key usage {table.name}") as conn:
        return rotation.table_usage(
            conn, table.postgres_schema, table.postgres_table, primary=keyring.primary if keyring else None
        )


def table_keys_rotate(
    *,
    table: TableConfig,
    keyring: Keyring,
    pages_per_batch: int = rotation.DEFAULT_PAGES_PER_BATCH,
    on_batch: Any = None,
    log: Any = None,
) -> rotation.RotationResult:
    """Re-encrypt the table's stored values with the keyring's primary key in the current format (see
    `pipeline.rotation`), once fdm's own tables are in their current shape (as a sync would leave them)."""
    with connect(connections.target_dsn(), application_name=f"fdm rotate {table.name}") as conn:
        ensure_schemas(conn)
        return rotation.rotate_table(
            conn,
            table_name=table.name,
            schema=table.postgres_schema,
            table=table.postgres_table,
            keyring=keyring,
            pages_per_batch=pages_per_batch,
            on_batch=on_batch,
            log=log,
        )
