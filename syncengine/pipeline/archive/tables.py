"""Back up one synced table into a directory of archive files, and restore it from one.

A table's archive directory holds:

- `rows.bin.zst` the table's rows as stored (binary COPY, so encrypted and compressed values stay the bytes
  they are), compressed with zstd; `.aes` appended when sealed with the keyring;
- `protected_columns.bin.zst` and `compression_dictionaries.bin.zst`: the table's rows of the protection
  catalog and its compression dictionaries, without which the stored values could not be read back;
- `manifest.json`: the table's columns, constraints and indexes, row count and checksums, key ids in use, the
  sync state (watermark), fdm's version, and the SHA-256 of every file; `manifest.sha256` holds its own.

Everything a backup reads comes from one REPEATABLE READ snapshot, so rows, checksums and catalog agree.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from syncengine.pipeline.archive import describe
from syncengine.pipeline.archive.files import (
    READ_BYTES,
    ArchiveError,
    file_name,
    file_sha256,
    open_for_reading,
    open_for_writing,
    written,
)
from syncengine.pipeline.bootstrap import create_schema_if_missing, ensure_schemas
from syncengine.pipeline.identifiers import quote_postgres
from syncengine.pipeline.locks import try_lock_table, unlock_table
from syncengine.pipeline.protection.catalog import CATALOG
from syncengine.pipeline.protection.dictionaries import DICTIONARIES_TABLE
from syncengine.pipeline.protection.keyring import Keyring
from syncengine.pipeline.protection.rotation import table_usage
from syncengine.pipeline.schema.target import qualified

FORMAT = "fdm-table-backup/1"
MANIFEST = "manifest.json"
MANIFEST_HASH = "manifest.sha256"
# fdm's own rows that belong to the table, keyed by its target: the file stem and the state table.
SIDE_TABLES = {"protected_columns": CATALOG, "compression_dictionaries": DICTIONARIES_TABLE}


@dataclass(frozen=True)
class BackupRequest:
    """One table to back up: fdm's name for it and where it is stored."""

    table_name: str
    schema: str
    table: str
    fdm_version: str


@dataclass(frozen=True)
class RestoreOutcome:
    table_name: str
    relation: str
    rows: int
    seconds: float


def backup_table(
    conn: psycopg.Connection, request: BackupRequest, out_dir: Path, *, keyring: Keyring | None
) -> dict[str, Any]:
    """Write the table's archive into `out_dir` (created) and return its manifest. `keyring`: seal the files.

    1. Open a read-only REPEATABLE READ transaction, lock the table against a publish's TRUNCATE (a publish
       waits for the backup), and fix the text settings.
    2. Describe the table; stream its rows and its catalog and dictionary rows through zstd into files.
    3. Compute the checksums and read the key ids and the sync state in the same snapshot.
    4. Write the manifest (with every file's SHA-256), then the manifest's own SHA-256.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    relation = qualified(request.schema, request.table)
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        # Before the snapshot: a full load's TRUNCATE is not MVCC-safe, so a snapshot taken before it commits
        # would read the table as empty. Holding the lock first makes a publish wait for the backup instead.
        conn.execute(f"LOCK TABLE {relation} IN ACCESS SHARE MODE")
        describe.apply_session_settings(conn)
        columns = describe.describe_columns(conn, relation)
        names = [column["name"] for column in columns]
        files = [
            _copy_out(
                conn,
                _select_all(relation, names),
                out_dir / file_name("rows", sealed=keyring is not None),
                keyring,
            )
        ]
        side = {}
        for stem, state_table in SIDE_TABLES.items():
            side_columns = describe.column_names(conn, state_table)
            query = _select_all(state_table, side_columns, where=(request.schema, request.table))
            files.append(
                _copy_out(conn, query, out_dir / file_name(stem, sealed=keyring is not None), keyring)
            )
            side[stem] = {"file": files[-1]["name"], "columns": side_columns}
        manifest = {
            "format": FORMAT,
            "fdm_version": request.fdm_version,
            "created_at": datetime.now(UTC).isoformat(),
            "table_name": request.table_name,
            "target": {"schema": request.schema, "table": request.table},
            "columns": columns,
            "constraints": describe.describe_constraints(conn, relation),
            "indexes": describe.describe_indexes(conn, relation),
            "rows_file": files[0]["name"],
            "side_tables": side,
            "checksums": describe.checksums(conn, relation, names),
            "key_ids": _key_ids(conn, request),
            "sync_state": _sync_state(conn, request.table_name),
            "sealed_with": keyring.primary if keyring is not None else None,
            "files": {entry["name"]: entry for entry in files},
        }
    _write_manifest(out_dir, manifest)
    return manifest


def _select_all(relation: str, columns: list[str], *, where: tuple[str, str] | None = None) -> sql.Composable:
    listed = sql.SQL(", ").join(sql.SQL(quote_postgres(name)) for name in columns)
    query = sql.SQL("SELECT {} FROM {}").format(listed, sql.SQL(relation))
    if where is not None:
        query = sql.SQL("{} WHERE target_schema = {} AND target_table = {}").format(
            query, sql.Literal(where[0]), sql.Literal(where[1])
        )
    return query


def _copy_out(
    conn: psycopg.Connection, query: sql.Composable, path: Path, keyring: Keyring | None
) -> dict[str, Any]:
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(query)
    with (
        conn.cursor() as cursor,
        cursor.copy(statement) as copy,
        open_for_writing(path, keyring=keyring) as out,
    ):
        for block in copy:
            out.write(block)
    entry = written(path)
    return {"name": entry.name, "sha256": entry.sha256, "bytes": entry.bytes}


def _key_ids(conn: psycopg.Connection, request: BackupRequest) -> list[str]:
    usage = table_usage(conn, request.schema, request.table, primary=None)
    return usage.key_ids if usage is not None else []


def _sync_state(conn: psycopg.Connection, table_name: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT to_jsonb(s) FROM _fdm.sync_state AS s WHERE table_name = %s", (table_name,)
    ).fetchone()
    return row[0] if row else None


def _write_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    path = out_dir / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    digest, _ = file_sha256(path)
    (out_dir / MANIFEST_HASH).write_text(f"{digest}  {MANIFEST}\n")


def read_verified_manifest(archive_dir: Path) -> dict[str, Any]:
    """The manifest, after checking its own SHA-256 and that of every file it lists (ArchiveError if not)."""
    label = archive_dir.name
    try:
        expected = (archive_dir / MANIFEST_HASH).read_text().split()[0]
        digest, _ = file_sha256(archive_dir / MANIFEST)
    except (OSError, IndexError) as exc:
        raise ArchiveError(f"{label}: no readable {MANIFEST} and {MANIFEST_HASH} ({exc})") from None
    if digest != expected:
        raise ArchiveError(f"{label}: {MANIFEST} does not match its SHA-256 (altered or truncated)")
    manifest: dict[str, Any] = json.loads((archive_dir / MANIFEST).read_text())
    if manifest.get("format") != FORMAT:
        raise ArchiveError(f"{label}: unknown archive format {manifest.get('format')!r}; expected {FORMAT}")
    for name, entry in manifest["files"].items():
        path = archive_dir / name
        if not path.is_file():
            raise ArchiveError(f"{label}: {name} is missing")
        digest, size = file_sha256(path)
        if size != entry["bytes"]:
            raise ArchiveError(
                f"{label}: {name} is {size} bytes, the manifest says {entry['bytes']} (truncated?)"
            )
        if digest != entry["sha256"]:
            raise ArchiveError(f"{label}: {name} does not match its SHA-256 in the manifest (altered)")
    return manifest


def restore_table(
    conn: psycopg.Connection,
    archive_dir: Path,
    *,
    keyring: Keyring | None,
    into_schema: str | None = None,
    clock: Callable[[], float] | None = None,
) -> RestoreOutcome:
    """Restore a table from its archive, verified, in one transaction; on any error the target stays as it was.

    1. Check the manifest's and every file's SHA-256 before touching the database.
    2. Take the table's lock (a run in progress makes the restore refuse), create fdm's schemas if needed.
    3. In one transaction: create a new table, COPY the rows in, check row count and checksums against the
       manifest, drop the old table and rename the new one into place with its constraints and indexes;
       replace the table's catalog and dictionary rows and, in place, its sync state (watermark).
    `into_schema`: restore beside the original, as `into_schema.<table>`; the sync state is left alone.
    """
    clock = clock or time.monotonic
    started = clock()
    manifest = read_verified_manifest(archive_dir)
    table_name = manifest["table_name"]
    schema = into_schema or manifest["target"]["schema"]
    table = manifest["target"]["table"]
    if not try_lock_table(conn, table_name):
        raise ArchiveError(f"{table_name}: a run holds the table; try again when it has finished")
    try:
        ensure_schemas(conn)
        rows = _restore_in_transaction(conn, archive_dir, manifest, (schema, table), keyring)
    except ArchiveError as exc:
        raise ArchiveError(f"{table_name}: {exc}") from None
    except psycopg.Error as exc:
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ArchiveError(f"{table_name}: the restore was rolled back: {first_line}") from None
    finally:
        if not conn.closed and not conn.broken:
            unlock_table(conn, table_name)
    return RestoreOutcome(table_name, f"{schema}.{table}", rows, clock() - started)


def _restore_in_transaction(
    conn: psycopg.Connection,
    archive_dir: Path,
    manifest: dict[str, Any],
    target: tuple[str, str],
    keyring: Keyring | None,
) -> int:
    schema, table = target
    in_place = (schema, table) == (manifest["target"]["schema"], manifest["target"]["table"])
    with conn.transaction():
        describe.apply_session_settings(conn)
        create_schema_if_missing(conn, schema)
        rows = _restore_rows(conn, archive_dir, manifest, target, keyring)
        for stem, state_table in SIDE_TABLES.items():
            entry = manifest["side_tables"][stem]
            side = (archive_dir / entry["file"], entry["columns"])
            _restore_side_table(conn, side, state_table, target, keyring)
        if in_place and manifest.get("sync_state"):
            _restore_sync_state(conn, manifest["sync_state"])
    return rows


def _restore_rows(
    conn: psycopg.Connection,
    archive_dir: Path,
    manifest: dict[str, Any],
    target: tuple[str, str],
    keyring: Keyring | None,
) -> int:
    schema, table = target
    incoming_name = f"_fdm_restore_{secrets.token_hex(4)}"
    incoming = qualified(schema, incoming_name)
    conn.execute(describe.create_table_sql(incoming, manifest["columns"]))
    names = [column["name"] for column in manifest["columns"]]
    _copy_in(conn, incoming, names, archive_dir / manifest["rows_file"], keyring)
    found = describe.checksums(conn, incoming, names)
    expected = manifest["checksums"]
    if found["rows"] != expected["rows"]:
        raise ArchiveError(f"the archive holds {found['rows']} rows, the manifest says {expected['rows']}")
    differing = [name for name in names if found["columns"][name] != expected["columns"].get(name)]
    if differing or found["row_checksum"] != expected["row_checksum"]:
        raise ArchiveError(
            f"restored values differ from the manifest's checksums ({', '.join(differing) or 'rows'})"
        )
    relation = qualified(schema, table)
    conn.execute(f"DROP TABLE IF EXISTS {relation}")
    conn.execute(f"ALTER TABLE {incoming} RENAME TO {quote_postgres(table)}")
    for constraint in manifest["constraints"]:
        conn.execute(describe.constraint_sql(relation, constraint))
    for index in manifest["indexes"]:
        conn.execute(describe.index_sql(relation, index))
    return int(found["rows"])


def _copy_in(
    conn: psycopg.Connection, relation: str, columns: list[str], path: Path, keyring: Keyring | None
) -> None:
    listed = ", ".join(quote_postgres(name) for name in columns)
    try:
        with (
            conn.cursor() as cursor,
            cursor.copy(f"COPY {relation} ({listed}) FROM STDIN (FORMAT binary)") as copy,
            open_for_reading(path, keyring=keyring) as source,
        ):
            while block := source.read(READ_BYTES):
                copy.write(block)
    except ArchiveError:
        raise
    except (psycopg.DataError, psycopg.errors.BadCopyFileFormat, OSError) as exc:
        raise ArchiveError(
            f"{path.name}: the rows cannot be read back ({str(exc).splitlines()[0]})"
        ) from None


def _restore_side_table(
    conn: psycopg.Connection,
    side: tuple[Path, list[str]],
    state_table: str,
    target: tuple[str, str],
    keyring: Keyring | None,
) -> None:
    """Replace the target's rows of a state table (catalog, dictionaries) with the archived ones, retargeted."""
    incoming = f"_fdm_restore_{secrets.token_hex(4)}"
    conn.execute(f"CREATE TEMP TABLE {incoming} (LIKE {state_table} INCLUDING DEFAULTS) ON COMMIT DROP")
    _copy_in(conn, incoming, side[1], side[0], keyring)
    conn.execute(f"UPDATE {incoming} SET target_schema = %s, target_table = %s", target)  # noqa: S608
    conn.execute(f"DELETE FROM {state_table} WHERE target_schema = %s AND target_table = %s", target)  # noqa: S608
    conflict = " ON CONFLICT DO NOTHING" if state_table == DICTIONARIES_TABLE else ""
    conn.execute(f"INSERT INTO {state_table} SELECT * FROM {incoming}{conflict}")  # noqa: S608


def _restore_sync_state(conn: psycopg.Connection, state: dict[str, Any]) -> None:
    conn.execute("DELETE FROM _fdm.sync_state WHERE table_name = %s", (state["table_name"],))
    conn.execute(
        "INSERT INTO _fdm.sync_state SELECT * FROM jsonb_populate_record(NULL::_fdm.sync_state, %s)",
        (psycopg.types.json.Jsonb(state),),
    )
