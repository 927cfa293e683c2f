"""More sections of the sync benchmark, each a ratio measured within one run (the machine may be shared, so
ratios from one run say more than seconds compared across runs):

1. encryption overhead: full syncs replacing 1M rows, plain and with ACCOUNT_ID and AMOUNT encrypted,
   alternated `rounds` times; the ratio of the medians, with the transform and publish stages beside them;
2. publish share: the part of a plain full sync spent publishing (what readers of the table wait for), and
   where the rest went;
3. incremental share: a 1% change synced incrementally against the full sync;
4. many small tables (`small_tables`, behind `--small-tables N`): N tables of 1,000 rows synced by two
   worker processes, each running its tables one after another as a django-q2 worker would (the Django side,
   the run records, is left out): the total, and each run's fixed cost by phase, with and without the
   per-process Snowflake session pool.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import statistics
import time
from collections.abc import Callable
from typing import Any

from syncengine.dev.benchmark import BenchmarkReport, Measurement, SeededSource
from syncengine.pipeline.protection.keyring import Keyring
from syncengine.pipeline.result import SyncResult
from syncengine.pipeline.runner import run_sync
from syncengine.pipeline.source import SnowflakeSettings
from syncengine.pipeline.spec import (
    EncryptionMode,
    EncryptionSpec,
    SourceRef,
    SyncMode,
    TableSpec,
    TargetRef,
)

SMALL_ROWS = 1_000


def _median(results: list[SyncResult], pick: Callable[[SyncResult], float]) -> float:
    return statistics.median(pick(result) for result in results)


def _total(result: SyncResult) -> float:
    return sum(result.phases.values())


def measure_extras(
    seeded: SeededSource, spec: TableSpec, *, rounds: int, small_tables: int, say: Callable[[str], None]
) -> None:
    """Append the sections above to `seeded.report` (the plain and encrypted tables exist already)."""
    report = seeded.report
    plain = dataclasses.replace(spec, mode=SyncMode.FULL, watermark_column=None)
    encrypted = dataclasses.replace(
        plain,
        name="benchmark_encrypted",
        target=TargetRef("public", "transactions_encrypted"),
        encryption=EncryptionSpec(mode=EncryptionMode.COLUMNS, columns=("ACCOUNT_ID", "AMOUNT")),
    )
    keyring = Keyring.generate("benchmark")
    runs: dict[str, list[SyncResult]] = {"plain": [], "encrypted": []}
    for round_ in range(rounds):
        say(f"plain and encrypted full syncs, round {round_ + 1} of {rounds}")
        runs["plain"].append(run_sync(plain, source=seeded.settings, target_dsn=seeded.dsn))
        runs["encrypted"].append(
            run_sync(encrypted, source=seeded.settings, target_dsn=seeded.dsn, keyring=keyring)
        )
    _encryption_rows(report, runs, rounds)
    _publish_share(report, runs["plain"])
    _incremental_share(report)
    if small_tables:
        say(f"{small_tables} tables of {SMALL_ROWS:,} rows through two worker processes")
        report.measurements.extend(small_tables_measurements(seeded, tables=small_tables))


def _encryption_rows(report: BenchmarkReport, runs: dict[str, list[SyncResult]], rounds: int) -> None:
    plain, encrypted = runs["plain"], runs["encrypted"]
    seconds = {name: _median(results, _total) for name, results in runs.items()}
    ratio = seconds["encrypted"] / seconds["plain"]
    report.measurements.append(
        Measurement(
            name=f"encryption overhead (2 encrypted columns / plain, full sync replacing, median of {rounds})",
            rows=plain[0].extract.rows,
            seconds=seconds["encrypted"],
            peak_rss_mb=0.0,
            detail=(
                f"plain {seconds['plain']:.2f} s, encrypted {seconds['encrypted']:.2f} s: x{ratio:.3f} "
                f"({(ratio - 1) * 100:+.1f}%); transform {_median(plain, lambda r: r.transform.seconds):.2f} "
                f"-> {_median(encrypted, lambda r: r.transform.seconds):.2f} s, publish "
                f"{_median(plain, lambda r: r.publish_seconds):.2f} -> "
                f"{_median(encrypted, lambda r: r.publish_seconds):.2f} s"
            ),
        )
    )


def _publish_share(report: BenchmarkReport, plain: list[SyncResult]) -> None:
    total = _median(plain, _total)
    phases = {name: statistics.median(r.phases.get(name, 0.0) for r in plain) for name in plain[0].phases}
    spread = ", ".join(f"{name} {seconds:.2f}" for name, seconds in phases.items())
    report.measurements.append(
        Measurement(
            name="publish share of a full sync replacing every row",
            rows=plain[0].extract.rows,
            seconds=phases.get("publish", 0.0),
            peak_rss_mb=0.0,
            detail=f"{phases.get('publish', 0.0) / total:.1%} of {total:.2f} s; by phase (s): {spread}",
        )
    )


def _incremental_share(report: BenchmarkReport) -> None:
    by_name = {measurement.name: measurement for measurement in report.measurements}
    full = by_name.get("full sync, replacing all rows")
    delta = by_name.get("incremental sync, 1% changed + 1% new")
    if full is None or delta is None:
        return
    report.measurements.append(
        Measurement(
            name="incremental 1% change / full sync replacing",
            rows=delta.rows,
            seconds=delta.seconds,
            peak_rss_mb=delta.peak_rss_mb,
            detail=f"{delta.seconds:.2f} s against {full.seconds:.2f} s: {delta.seconds / full.seconds:.1%}",
        )
    )


def small_tables_measurements(seeded: SeededSource, *, tables: int, workers: int = 2) -> list[Measurement]:
    """Seed `tables` copies of a 1,000-row table, then sync them all twice (fresh sessions, then pooled)."""
    _seed_small_tables(seeded.seeding, tables)
    specs = [_small_spec(index) for index in range(tables)]
    measurements = []
    for pooled in (False, True):
        started = time.perf_counter()
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers) as pool:
            shares = [
                (specs[index::workers], seeded.settings, seeded.dsn, pooled) for index in range(workers)
            ]
            results = [phases for share in pool.starmap(_sync_share, shares) for phases in share]
        elapsed = time.perf_counter() - started
        measurements.append(_small_tables_row(results, elapsed, pooled=pooled, workers=workers))
    return measurements


def _small_tables_row(
    results: list[dict[str, float]], elapsed: float, *, pooled: bool, workers: int
) -> Measurement:
    # The first run of each worker pays its imports and first logins: the fixed cost is the median run's.
    names = list(results[0])
    phases = {name: statistics.median(result.get(name, 0.0) for result in results) for name in names}
    spread = ", ".join(f"{name} {seconds * 1000:.0f}" for name, seconds in phases.items())
    sessions = "Snowflake sessions pooled per process" if pooled else "a new Snowflake session per use"
    return Measurement(
        name=f"{len(results)} tables x {SMALL_ROWS:,} rows, {workers} workers, {sessions}",
        rows=len(results) * SMALL_ROWS,
        seconds=elapsed,
        peak_rss_mb=0.0,
        detail=f"median run {sum(phases.values()) * 1000:.0f} ms; by phase (ms): {spread}",
    )


def _seed_small_tables(conn: Any, tables: int) -> None:
    from syncengine.dev.benchmark import DATABASE, SCHEMA, TABLE

    cursor = conn.cursor()
    for index in range(tables):
        cursor.execute(
            f'CREATE OR REPLACE TABLE "{DATABASE}"."{SCHEMA}"."SMALL_{index:03d}" AS '  # noqa: S608 - constants
            f'SELECT * FROM "{DATABASE}"."{SCHEMA}"."{TABLE}" WHERE TXN_ID <= {SMALL_ROWS}'
        )


def _small_spec(index: int) -> TableSpec:
    from syncengine.dev.benchmark import DATABASE, SCHEMA

    return TableSpec(
        name=f"small_{index:03d}",
        source=SourceRef(DATABASE, SCHEMA, f"SMALL_{index:03d}"),
        target=TargetRef("public", f"small_{index:03d}"),
        mode=SyncMode.FULL,
        primary_key=("TXN_ID",),
    )


def _sync_share(
    specs: list[TableSpec], settings: SnowflakeSettings, dsn: str, pooled: bool
) -> list[dict[str, float]]:
    """One worker process: its tables one after another; each run's phases."""
    from syncengine.pipeline.source_pool import SessionPool

    pool = SessionPool()
    try:
        return [
            run_sync(spec, source=pool.source(settings) if pooled else settings, target_dsn=dsn).phases
            for spec in specs
        ]
    finally:
        pool.close_all()
