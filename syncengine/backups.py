"""Backups of synced tables (the Django side): which tables, where archives go, the keyring, scheduled backups
and their retention. The archive format and the restore itself are the core's (`syncengine.pipeline.archive`).

A backup directory holds one subdirectory per table, named after the table (fdm's names are letters, digits
and `_`), and `backup.json` listing them; a scheduled backup is written under a `.partial` name and renamed
when complete, so retention never counts, and a restore never reads, a backup cut short.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from django.conf import settings

from syncconfig.models import TableConfig
from syncconfig.selectors import table_list
from syncengine import connections
from syncengine.pipeline.archive.describe import relation_exists
from syncengine.pipeline.archive.files import ArchiveError
from syncengine.pipeline.archive.tables import (
    MANIFEST,
    BackupRequest,
    RestoreOutcome,
    backup_table,
    restore_table,
)
from syncengine.pipeline.postgres import connect
from syncengine.pipeline.protection.keyring import Keyring, KeyringError

logger = logging.getLogger("syncengine.backups")

INDEX_FILE = "backup.json"
PARTIAL_SUFFIX = ".partial"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class TableBackup:
    table_name: str
    directory: Path
    rows: int
    bytes: int
    seconds: float


@dataclass
class BackupReport:
    directory: Path
    tables: list[TableBackup]
    skipped: list[str]  # configured tables that have no target table yet (never synced)


def fdm_version() -> str:
    try:
        return metadata.version("fdm")
    except metadata.PackageNotFoundError:
        return "unknown"


def _keyring(*, required: bool) -> Keyring | None:
    try:
        return connections.keyring(required=required)
    except KeyringError as exc:
        raise ArchiveError(str(exc)) from None


def _tables(names: Sequence[str]) -> list[TableConfig]:
    tables = list(table_list(names=names) if names else table_list())
    unknown = sorted(set(names) - {table.name for table in tables})
    if unknown:
        raise ArchiveError(f"no table named {', '.join(repr(name) for name in unknown)}")
    return tables


def tables_backup(*, names: Sequence[str], out_dir: Path, encrypt: bool = False) -> BackupReport:
    """Archive the named tables (all configured tables when none are named) into `out_dir`.

    Each table's archive is one snapshot of it; tables are archived one after the other. With `encrypt`, the
    files are sealed with the keyring's primary key (FDM_ENCRYPTION_KEYS), which a restore then needs.
    """
    keyring = _keyring(required=True) if encrypt else None
    report = BackupReport(directory=out_dir, tables=[], skipped=[])
    with connect(connections.target_dsn(), application_name="fdm backup") as conn:
        conn.autocommit = True
        for table in _tables(names):
            if not relation_exists(conn, table.postgres_schema, table.postgres_table):
                report.skipped.append(table.name)
                continue
            started = time.monotonic()
            request = BackupRequest(table.name, table.postgres_schema, table.postgres_table, fdm_version())
            manifest = backup_table(conn, request, out_dir / table.name, keyring=keyring)
            report.tables.append(
                TableBackup(
                    table_name=table.name,
                    directory=out_dir / table.name,
                    rows=manifest["checksums"]["rows"],
                    bytes=sum(entry["bytes"] for entry in manifest["files"].values()),
                    seconds=time.monotonic() - started,
                )
            )
            logger.info("backed up table %s: %s rows", table.name, report.tables[-1].rows)
    _write_index(report)
    return report


def _write_index(report: BackupReport) -> None:
    report.directory.mkdir(parents=True, exist_ok=True)
    index = {
        "fdm_version": fdm_version(),
        "created_at": datetime.now(UTC).isoformat(),
        "tables": [entry.table_name for entry in report.tables],
        "skipped": report.skipped,
    }
    (report.directory / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")


def archive_directories(path: Path, *, table: str | None = None) -> list[Path]:
    """The table archives under `path`: `path` itself when it is one table's archive, else its subdirectories
    (only `table`'s when given)."""
    if (path / MANIFEST).is_file():
        candidates = [path]
    elif path.is_dir():
        candidates = sorted(child for child in path.iterdir() if (child / MANIFEST).is_file())
    else:
        raise ArchiveError(f"{path}: no such backup directory")
    if table is not None:
        candidates = [candidate for candidate in candidates if _archived_name(candidate) == table]
        if not candidates:
            raise ArchiveError(f"{path}: holds no archive of table {table!r}")
    if not candidates:
        raise ArchiveError(f"{path}: holds no table archive ({MANIFEST} not found)")
    return candidates


def _archived_name(directory: Path) -> str | None:
    try:
        name = json.loads((directory / MANIFEST).read_text()).get("table_name")
    except (OSError, ValueError):
        return directory.name
    return name if isinstance(name, str) else None


def archive_restore(*, path: Path, table: str | None = None, into: str | None = None) -> list[RestoreOutcome]:
    """Restore each table archived under `path` (or only `table`), verified; see `restore_table`. Each table is
    restored in its own transaction: an archive that fails leaves its table as it was."""
    keyring = _keyring(required=False)
    outcomes = []
    with connect(connections.target_dsn(), application_name="fdm restore") as conn:
        conn.autocommit = True
        for directory in archive_directories(path, table=table):
            outcome = restore_table(conn, directory, keyring=keyring, into_schema=into)
            logger.info(
                "restored table %s into %s: %s rows", outcome.table_name, outcome.relation, outcome.rows
            )
            outcomes.append(outcome)
    return outcomes


def backup_scheduled(*, now: datetime | None = None) -> dict[str, Any]:
    """The scheduled backup: every table into FDM_BACKUP_DIR/<UTC time>, then keep the newest FDM_BACKUP_KEEP.

    1. Write into `<stamp>.partial`; rename it to `<stamp>` once every table is archived.
    2. Delete the oldest complete backups beyond FDM_BACKUP_KEEP, and partial ones an interrupted backup left.
    """
    root = settings.FDM_BACKUP_DIR
    if root is None:
        return {"skipped": "FDM_BACKUP_DIR is not set"}
    stamp = (now or datetime.now(UTC)).strftime(STAMP_FORMAT)
    partial = root / f"{stamp}{PARTIAL_SUFFIX}"
    report = tables_backup(names=[], out_dir=partial, encrypt=settings.FDM_BACKUP_ENCRYPT)
    partial.rename(root / stamp)
    removed = backups_prune(root=root, keep=settings.FDM_BACKUP_KEEP, current=stamp)
    return {"backup": stamp, "tables": len(report.tables), "removed": removed}


def backups_prune(*, root: Path, keep: int, current: str | None = None) -> list[str]:
    """Delete all but the newest `keep` complete backups under `root` (never `current`), and partial backups
    other than `current`'s. Only directories named like a scheduled backup are touched."""
    complete: list[Path] = []
    partial: list[Path] = []
    for child in root.iterdir() if root.is_dir() else []:
        stem = child.name.removesuffix(PARTIAL_SUFFIX)
        if not child.is_dir() or not _is_stamp(stem):
            continue
        (partial if child.name.endswith(PARTIAL_SUFFIX) else complete).append(child)
    doomed = sorted(complete, key=lambda path: path.name, reverse=True)[max(keep, 1) :]
    doomed += [path for path in partial if path.name.removesuffix(PARTIAL_SUFFIX) != current]
    for path in doomed:
        shutil.rmtree(path)
    return sorted(path.name for path in doomed)


def _is_stamp(name: str) -> bool:
    try:
        datetime.strptime(name, STAMP_FORMAT)
    except ValueError:
        return False
    return True
