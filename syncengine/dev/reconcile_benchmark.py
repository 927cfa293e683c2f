"""The reconciliation benchmark (`manage.py benchmark --reconcile`): what checking a synced table costs.

The benchmark's TRANSACTIONS table is seeded in the emulator and synced in full, twice: as it is (its METADATA
VARIANT column is compared as values, in memory) and without METADATA (every column hashed in SQL). Each copy
is then reconciled deep while equal, and again with 10 differences planted (3 source rows updated, 2 deleted,
5 target rows changed behind fdm's back); the light check (counts and sums) is measured beside them. Each
line reports seconds, queries on each side, and the bytes of the values the queries returned.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import psycopg

from syncengine.dev.benchmark import (
    DATABASE,
    SCHEMA,
    TABLE,
    BenchmarkReport,
    Measurement,
    PeakMemory,
    _rss_mb,
    seeded_source,
)
from syncengine.pipeline.reconcile.deep import DeepOptions, deep_reconcile
from syncengine.pipeline.reconcile.light import reconcile_light
from syncengine.pipeline.runner import run_sync
from syncengine.pipeline.source import SnowflakeSettings
from syncengine.pipeline.spec import SourceRef, SyncMode, TableSpec, TargetRef

PLANTED = 10


def _quiet(*_args: Any, **_fields: Any) -> None:
    return None


def _deep(spec: TableSpec, settings: SnowflakeSettings, dsn: str) -> tuple[int, str]:
    source = settings.connect()
    try:
        with psycopg.connect(dsn, autocommit=True) as target:
            result = deep_reconcile(
                spec, source_conn=source, target_conn=target, options=DeepOptions(), log=_quiet
            )
    finally:
        source.close()
    detail = (
        f"{result.differences_found} differences, {result.segments_checked} segments; queries: "
        f"{result.queries_source} Snowflake + {result.queries_target} PostgreSQL; values returned: "
        f"{result.bytes_source / 2**20:,.2f} MB + {result.bytes_target / 2**20:,.2f} MB"
    )
    if result.compared_in_memory:
        detail += f"; in memory: {', '.join(result.compared_in_memory)}"
    return result.rows_source, detail


def _light(spec: TableSpec, settings: SnowflakeSettings, dsn: str) -> tuple[int, str]:
    source = settings.connect()
    try:
        with psycopg.connect(dsn, autocommit=True) as target:
            report = reconcile_light(spec, source_conn=source, target_conn=target, log=_quiet)
    finally:
        source.close()
    return report["rows"]["source"], f"{report['status']}; 1 query per side; {len(report['sums'])} sums"


def _measure(report: BenchmarkReport, name: str, work: Callable[[], tuple[int, str]]) -> None:
    with PeakMemory() as memory:
        started = time.perf_counter()
        rows, detail = work()
        seconds = time.perf_counter() - started
    report.measurements.append(Measurement(name, rows, seconds, memory.peak_mb, detail))


def _plant(seeding: Any, dsn: str, targets: list[str], rows: int) -> None:
    """10 differences in each copy, spread over the key space: 3 source updates, 2 source deletes, 5 target
    changes."""
    ids = [max(1, rows * tenth // 10) for tenth in range(10)]
    table = f'"{DATABASE}"."{SCHEMA}"."{TABLE}"'
    cursor = seeding.cursor()
    cursor.execute(
        f"UPDATE {table} SET CURRENCY = 'XXX' WHERE TXN_ID IN (?, ?, ?)",  # noqa: S608 - constants
        ids[:3],
        _force_qmark_paramstyle=True,
    )  # noqa: S608
    cursor.execute(f"DELETE FROM {table} WHERE TXN_ID IN (?, ?)", ids[3:5], _force_qmark_paramstyle=True)  # noqa: S608
    with psycopg.connect(dsn, autocommit=True) as target:
        for name in targets:
            target.execute(
                f"UPDATE public.{name} SET amount = amount + 1 WHERE txn_id = ANY(%s)",  # noqa: S608 - own names
                (ids[5:],),
            )


def run_reconcile_benchmark(
    *,
    server_dsn: str,
    rows: int = 1_000_000,
    batch_size: int = 100_000,
    say: Callable[[str], None] = lambda message: None,
) -> BenchmarkReport:
    """Seed, sync, and measure deep and light reconciliations of an equal and of a planted copy."""
    with seeded_source(server_dsn=server_dsn, rows=rows, batch_size=batch_size, say=say) as seeded:
        report, settings, seeding, dsn = seeded.report, seeded.settings, seeded.seeding, seeded.dsn
        whole = TableSpec(
            name="benchmark_transactions",
            source=SourceRef(DATABASE, SCHEMA, TABLE),
            target=TargetRef("public", "transactions"),
            mode=SyncMode.FULL,
            batch_size=batch_size,
        )
        hashed = dataclasses.replace(
            whole,
            name="benchmark_hashed",
            target=TargetRef("public", "transactions_hashed"),
            exclude_columns=("METADATA",),
        )
        report.baseline_rss_mb = _rss_mb()
        for spec in (whole, hashed):
            say(f"syncing {spec.target.table}")
            run_sync(spec, source=settings, target_dsn=dsn)
        for stage in ("equal", f"{PLANTED} differences"):
            if stage != "equal":
                _plant(seeding, dsn, [whole.target.table, hashed.target.table], rows)
            say(f"reconciling ({stage})")
            _measure(
                report, f"deep, every column hashed in SQL, {stage}", lambda: _deep(hashed, settings, dsn)
            )
            _measure(
                report, f"deep, METADATA compared in memory, {stage}", lambda: _deep(whole, settings, dsn)
            )
            _measure(report, f"light (counts and sums), {stage}", lambda: _light(whole, settings, dsn))
        seeding.close()
        return report
