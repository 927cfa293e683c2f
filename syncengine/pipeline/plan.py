"""Planning a run: which columns it loads and how they are protected, whether it loads in full or from the
watermark, and what it does about schema drift. Decided once, before any row is read; every later stage
reads the same frozen `RunPlan`.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncengine.pipeline.backfill import BackfillRange, BackfillRequest, parse_range
from syncengine.pipeline.bootstrap import TargetState
from syncengine.pipeline.errors import ConfigurationError
from syncengine.pipeline.extract import SourceQuery, SourceTable, build_query, key_query
from syncengine.pipeline.hooks import Log
from syncengine.pipeline.protection import catalog
from syncengine.pipeline.protection.plan import ProtectionPlan, plan_protection
from syncengine.pipeline.protection.policy import check_policy
from syncengine.pipeline.schema.columns import TablePlan, plan_columns
from syncengine.pipeline.schema.drift import DriftPlan, LoadColumn, plan_drift
from syncengine.pipeline.schema.fdm_columns import check_columns, target_key
from syncengine.pipeline.spec import DeleteMode, SyncMode, TableSpec
from syncengine.pipeline.watermark import Watermark, kind_for


@dataclass(frozen=True)
class RunPlan:
    spec: TableSpec
    mode: SyncMode  # the mode this run uses: a full refresh of an incremental table is FULL
    columns: TablePlan  # every planned column, blind index columns included
    protection: ProtectionPlan | None
    drift: DriftPlan  # the columns actually loaded, and the DDL that brings the target in line
    since: Watermark | None  # incremental runs read `cursor >= since`; None for a full load
    query: SourceQuery
    backfill: BackfillRange | None = None  # a backfill reads this range instead; `since` stays the stored one
    key_scan: SourceQuery | None = None  # the key-only read that finds keys deleted in the source

    @property
    def incremental(self) -> bool:
        return self.mode == SyncMode.INCREMENTAL

    @property
    def deletes(self) -> DeleteMode:
        return self.spec.deletes.mode

    @property
    def merges(self) -> bool:
        """Does this run merge into the target's rows rather than replace them? Incremental runs do; so does
        a full load of a history table (versions are kept) or with soft deletes (deleted rows are kept)."""
        return self.incremental or self.spec.history or self.deletes == DeleteMode.SOFT

    @property
    def load_columns(self) -> tuple[LoadColumn, ...]:
        return self.drift.load_columns

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(self.columns.target_primary_key)

    @property
    def watermark_name(self) -> str | None:
        return self.columns.watermark.target_name if self.columns.watermark else None

    def watermark_after(self, newest: Watermark | None) -> Watermark | None:
        """The watermark to store: an incremental run never moves it back, a full load sets it afresh."""
        if not self.incremental:
            return newest
        return newest.later(self.since) if newest else self.since


def plan_run(  # noqa: PLR0913 - the run's inputs, keyword-only
    spec: TableSpec,
    *,
    source: SourceTable,
    existing: TargetState,
    full_refresh: bool,
    log: Log,
    backfill: BackfillRequest | None = None,
) -> RunPlan:
    """Plan one run from the source's columns and what the target already holds.

    1. Plan the loaded columns (include/exclude, names, types) and their protection, and check the latter
       against the per-source protection policy.
    2. Decide the mode: incremental needs a watermark for the same column and type, the same existing target,
       and unchanged column protection; anything else loads in full.
    3. Plan the drift handling, and refuse an incremental load into a target without a usable key.
    4. A backfill reads its range instead of `cursor >= watermark`; deletes, when on, add a key-only scan.
    """
    loaded_columns = plan_columns(spec, source.columns, source.declared_key)
    check_columns(spec, loaded_columns)
    columns, protection = plan_protection(spec, loaded_columns)
    check_policy(spec, loaded_columns, protection)  # no column another table encrypts goes out in clear
    since = usable_watermark(spec, columns, existing, full_refresh=full_refresh, log=log)
    if since is not None and protection_changed(protection, existing.protection):
        log("warning", "column protection changed; loading in full", table=spec.name)
        since = None
    backfill_range = _backfill_range(spec, columns, since, backfill, full_refresh=full_refresh)
    if since is not None and protection is not None and existing.protection is not None:
        protection = protection.keeping_blind_index_versions(existing.protection.blind_index_versions())
    drift = plan_drift(spec, columns, existing.table, full_load=since is None)
    for change in drift.changes:
        log("warning", "schema drift", table=spec.name, change=change)
    _check_merge(spec, columns, protection, existing, incremental=since is not None)
    loaded = TablePlan(
        columns=tuple(column.plan for column in drift.load_columns),
        primary_key=columns.primary_key,
        watermark=columns.watermark,
    )
    return RunPlan(
        spec=spec,
        mode=SyncMode.FULL if since is None else SyncMode.INCREMENTAL,
        columns=columns,
        protection=protection,
        drift=drift,
        since=since,
        query=build_query(
            spec.source,
            loaded,
            backfill_range.start if backfill_range else since,
            backfill_range.end if backfill_range else None,
        ),
        backfill=backfill_range,
        key_scan=_key_scan(spec, columns, incremental=since is not None),
    )


def _key_scan(spec: TableSpec, columns: TablePlan, *, incremental: bool) -> SourceQuery | None:
    """An incremental run with deletes on reads every source key; a full load has them all in staging."""
    if not incremental or spec.deletes.mode == DeleteMode.OFF:
        return None
    return key_query(spec.source, columns.primary_key)


def _backfill_range(
    spec: TableSpec,
    columns: TablePlan,
    since: Watermark | None,
    backfill: BackfillRequest | None,
    *,
    full_refresh: bool,
) -> BackfillRange | None:
    """The backfill's range read as the incremental column's kind; a backfill merges into a table that is
    already synced incrementally, so anything that would make this run a full load refuses it instead."""
    if backfill is None:
        return None
    if spec.mode != SyncMode.INCREMENTAL or columns.watermark is None:
        raise ConfigurationError(
            "a backfill needs an incremental table with an incremental column", table=spec.name
        )
    if full_refresh:
        raise ConfigurationError("a backfill and a full refresh exclude each other", table=spec.name)
    if since is None:
        raise ConfigurationError(
            "a backfill merges into a table already synced incrementally, and this run would load in full "
            "(first run, changed incremental column, target or column protection); run a sync first",
            table=spec.name,
        )
    return parse_range(kind_for(columns.watermark.source), backfill, table=spec.name)


def _check_merge(
    spec: TableSpec,
    columns: TablePlan,
    protection: ProtectionPlan | None,
    existing: TargetState,
    *,
    incremental: bool,
) -> None:
    """A run that merges into the target's rows needs its key there; deletes are found by key; history and
    soft deletes on a full load compare every row with the target's, which randomised encryption makes
    impossible (every ciphertext differs from the stored one)."""
    mode = spec.deletes.mode
    key = target_key(spec, columns.target_primary_key)
    merging = incremental or spec.history or mode == DeleteMode.SOFT
    if merging and key and existing.table is not None and not existing.table.has_unique_key(key):
        raise ConfigurationError(
            f"the target table has no primary key or unique index on ({', '.join(key)}), which incremental "
            "loading, history and soft deletes need",
            table=spec.name,
        )
    keyed_mode = spec.mode == SyncMode.INCREMENTAL or mode == DeleteMode.SOFT
    if mode != DeleteMode.OFF and not columns.primary_key and keyed_mode:
        raise ConfigurationError(
            f"deletes mode {mode} finds deleted rows by primary key; configure primary_key", table=spec.name
        )
    merges_in_full = not incremental and (spec.history or mode == DeleteMode.SOFT)
    if merges_in_full and protection is not None and protection.encrypts:
        raise ConfigurationError(
            "a full load with history or soft deletes compares every row with the stored one, which encrypted "
            "columns hide (each encryption differs); use incremental mode or leave those columns clear",
            table=spec.name,
        )


def usable_watermark(
    spec: TableSpec, columns: TablePlan, existing: TargetState, *, full_refresh: bool, log: Log
) -> Watermark | None:
    """The watermark an incremental run starts from, or None for a full load.

    A stored watermark only counts for the same incremental column and the same, existing target table:
    otherwise rows below it would never be loaded.
    """
    state = existing.sync_state
    if spec.mode != SyncMode.INCREMENTAL or columns.watermark is None or full_refresh:
        return None
    if state is None or state.watermark is None:
        return None
    if state.watermark_column != columns.watermark.source_name:
        log("warning", "incremental column changed; loading in full", table=spec.name)
        return None
    moved = (state.target_schema, state.target_table) != (spec.target.schema, spec.target.table)
    if moved or existing.table is None:
        log("warning", "target table is new or moved; loading in full", table=spec.name)
        return None
    if state.watermark.kind != kind_for(columns.watermark.source):
        log("warning", "incremental column changed type; loading in full", table=spec.name)
        return None
    return state.watermark


def protection_changed(protection: ProtectionPlan | None, stored: catalog.CatalogTable | None) -> bool:
    """Would this run store some column differently from the rows already in the target?"""
    if protection is None:
        return stored is not None
    return stored is None or stored.signature() != protection.signature()
