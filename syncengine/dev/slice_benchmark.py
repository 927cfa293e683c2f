"""The sliced-extract benchmark (`benchmark --slices`): does a full sync overlap reading with loading, and does
its memory stay flat as the table grows?

For each table size (1,000,000 and 5,000,000 rows by default), in one process and one run:
1. the source read alone in one query, streamed through the pipeline's reader with each batch dropped as it
   arrives (the floor of a one-query read: time and peak memory);
2. the same read in key-range slices over the default number of sessions;
3. a full sync read in one query (what the pipeline did before slices) and one read in slices (what it does
   now), each into a new table;
4. the COPY alone of the same rows, already in memory as Arrow (last: it holds the whole table in memory).

Reported as ratios: sync time / (source + load), sync time / max(source, load), and the sync's peak RSS /
the one-query source read's. Memory is this process's RSS (the emulator runs in a child process, as Snowflake
would be elsewhere); each step runs in a fresh process, so none inherits memory an earlier step left behind.
"""

from __future__ import annotations

import functools
import gc
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa

from syncengine.dev.benchmark import (
    DATABASE,
    SCHEMA,
    TABLE,
    Measurement,
    PeakMemory,
    _copy_adbc,
    _read_source,
    _rss_mb,
    _wire_batches,
    machine_facts,
    seeded_source,
)
from syncengine.dev.sampledata import insert_transactions
from syncengine.pipeline.bootstrap import open_source
from syncengine.pipeline.extract import SourceQuery, qualified_source
from syncengine.pipeline.load import DEFAULT_COPY_STREAMS
from syncengine.pipeline.runner import run_sync
from syncengine.pipeline.slice_reader import Sessions, SliceQueries, read_slices
from syncengine.pipeline.slices import DEFAULT_SOURCE_CONNECTIONS, SliceLimits, plan_slices, sliced_query
from syncengine.pipeline.source import SnowflakeSettings
from syncengine.pipeline.spec import SourceRef, SyncMode, TableSpec, TargetRef
from syncengine.pipeline.typemap import SourceColumn

DEFAULT_SIZES = (1_000_000, 5_000_000)
SEED_CHUNK = 1_000_000
Say = Callable[[str], None]
KEY = SourceColumn("TXN_ID", "NUMBER", precision=38, scale=0)


@dataclass
class Step(Measurement):
    start_rss_mb: float = 0.0  # this process's RSS as the step began
    publish_seconds: float = 0.0  # a sync's publishing transaction, which neither source nor load includes


@dataclass
class SizeFigures:
    """One table size's measurements: source reads, load alone, and the full syncs before and after slices."""

    rows: int
    steps: dict[str, Step] = field(default_factory=dict)

    def ratios(self, sync: str) -> dict[str, float]:
        source, load, run = self.steps["source"], self.steps["load"], self.steps[sync]
        return {
            "sum": run.seconds / (source.seconds + load.seconds),
            "max": run.seconds / max(source.seconds, load.seconds),
            "staging": (run.seconds - run.publish_seconds) / max(source.seconds, load.seconds),
            "rss": run.peak_rss_mb / source.peak_rss_mb,
        }


@dataclass
class SliceReport:
    batch_size: int
    connections: int
    machine: dict[str, str]
    sizes: list[SizeFigures] = field(default_factory=list)

    def to_markdown(self) -> str:
        lines = [
            f"Batch size {self.batch_size:,}; slices read over {self.connections} Snowflake sessions; "
            f"COPY over {DEFAULT_COPY_STREAMS} connections.",
            "",
            "| rows | step | seconds | peak RSS (MB) | RSS at start (MB) | detail |",
            "| ---: | --- | ---: | ---: | ---: | --- |",
        ]
        for size in self.sizes:
            for step in size.steps.values():
                lines.append(
                    f"| {size.rows:,} | {step.name} | {step.seconds:.2f} | {step.peak_rss_mb:,.0f} | "
                    f"{step.start_rss_mb:,.0f} | {step.detail} |"
                )
        lines += [
            "",
            "| rows | full sync | time / (source + load) | time / max(source, load) | "
            "(time - publish) / max(source, load) | peak RSS / source's |",
            "| ---: | --- | ---: | ---: | ---: | ---: |",
        ]
        for size in self.sizes:
            for sync in ("sync one query", "sync sliced"):
                ratio = size.ratios(sync)
                lines.append(
                    f"| {size.rows:,} | {size.steps[sync].name} | {ratio['sum']:.2f} | {ratio['max']:.2f} | "
                    f"{ratio['staging']:.2f} | {ratio['rss']:.2f} |"
                )
        lines += ["", *(f"- {key}: {value}" for key, value in self.machine.items())]
        return "\n".join(lines)


Measured = tuple[
    int, str, float, float, float, float
]  # rows, detail, publish s, seconds, peak RSS, start RSS


def _step(figures: SizeFigures, key: str, name: str, child: Callable[[], Measured], say: Say) -> None:
    """Run one step in a fresh process, so that no step inherits the memory an earlier one left behind."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        rows, detail, publish, seconds, peak, start = pool.submit(child).result()
    figures.steps[key] = Step(name, rows, seconds, peak, detail, start, publish)
    say(f"{name}: {seconds:.2f} s, peak RSS {peak:,.0f} MB (from {start:,.0f} MB); {detail}")


def _measured(work: Callable[[], tuple[int, str, float]]) -> Measured:
    """In the step's process: time `work` and sample its peak RSS."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    start = _rss_mb()
    with PeakMemory() as memory:
        started = time.perf_counter()
        rows, detail, publish = work()
        seconds = time.perf_counter() - started
    return rows, detail, publish, seconds, memory.peak_mb, start


def _stream_source(settings: SnowflakeSettings, limits: SliceLimits) -> tuple[int, str, float]:
    """Read the whole table through the pipeline's reader, dropping each batch: the read's own cost."""
    source = SourceRef(DATABASE, SCHEMA, TABLE)
    first = open_source(settings, table="benchmark")
    try:
        plan = plan_slices(first, source, KEY, limits, table="benchmark")
        base = SourceQuery(f"SELECT * FROM {qualified_source(source)}")  # noqa: S608 - quoted constants
        queries = [sliced_query(base, slice_range) for slice_range in plan.ranges]
        reads = SliceQueries(queries, 100_000, "benchmark", query_ids=[[] for _ in queries])
        sessions = Sessions(first=first, connect=settings.connect, count=limits.connections)
        rows = sum(batch.num_rows for batch in read_slices(reads, sessions))
    finally:
        first.close()
    detail = f"{len(queries)} quer{'y' if len(queries) == 1 else 'ies'}, {limits.connections} session(s)"
    return rows, detail, 0.0


def _sync(
    settings: SnowflakeSettings, dsn: str, spec: TableSpec, limits: SliceLimits
) -> tuple[int, str, float]:
    result = run_sync(spec, source=settings, target_dsn=dsn, slicing=limits)
    slices = result.checks["extract_slices"]["slices"]
    return (
        result.extract.rows,
        (
            f"{slices} slice(s): extract wait {result.extract.seconds:.2f} s, transform {result.transform.seconds:.2f} s, "
            f"COPY wait {result.load.seconds:.2f} s, publish {result.publish_seconds:.2f} s"
        ),
        result.publish_seconds,
    )


def _load_alone(settings: SnowflakeSettings, dsn: str, batch_size: int) -> Measured:
    """The COPY of the table's rows cast as the pipeline casts them, read into memory beforehand (unmeasured)."""
    extracted, _ = _read_source(settings.connect)
    wire = _wire_batches(extracted, batch_size)
    extracted.clear()
    return _measured(lambda: (*_copy_adbc(dsn, wire, DEFAULT_COPY_STREAMS), 0.0))


def measure_size(*, server_dsn: str, rows: int, batch_size: int, say: Callable[[str], None]) -> SizeFigures:
    figures = SizeFigures(rows=rows)
    first = min(rows, SEED_CHUNK)
    with seeded_source(server_dsn=server_dsn, rows=first, batch_size=batch_size, say=say) as seeded:
        # The rest in chunks: one INSERT of millions of rows outlasts the connector's 60 s read timeout.
        for start in range(first, rows, SEED_CHUNK):
            say(f"seeding rows {start + 1:,} to {min(start + SEED_CHUNK, rows):,}")
            insert_transactions(
                seeded.seeding,
                database=DATABASE,
                schema=SCHEMA,
                table=TABLE,
                rows=min(SEED_CHUNK, rows - start),
                first_id=start + 1,
            )
        seeded.seeding.close()
        settings, dsn = seeded.settings, seeded.dsn
        one, sliced = SliceLimits(connections=1), SliceLimits(connections=DEFAULT_SOURCE_CONNECTIONS)
        say(f"{rows:,} rows: source reads")
        for key, label, limits in (("source", "one query", one), ("source sliced", "sliced", sliced)):
            reading = functools.partial(_measured, functools.partial(_stream_source, settings, limits))
            _step(figures, key, f"source read alone, {label}", reading, say)
        for key, label, limits in (("sync one query", "one query", one), ("sync sliced", "sliced", sliced)):
            say(f"{rows:,} rows: full sync, {label}")
            spec = TableSpec(
                name=f"benchmark_{key.replace(' ', '_')}",
                source=SourceRef(DATABASE, SCHEMA, TABLE),
                target=TargetRef("public", f"transactions_{key.replace(' ', '_')}"),
                mode=SyncMode.FULL,
                primary_key=("TXN_ID",),
                batch_size=batch_size,
            )
            _step(
                figures,
                key,
                f"full sync, {label}",
                functools.partial(_measured, functools.partial(_sync, settings, dsn, spec, limits)),
                say,
            )
        say(f"{rows:,} rows: COPY alone")
        copy = functools.partial(_load_alone, settings, dsn, batch_size)
        _step(figures, "load", "COPY alone (ADBC, rows in memory)", copy, say)
    pa.default_memory_pool().release_unused()
    return figures


def run_slice_benchmark(
    *,
    server_dsn: str,
    sizes: tuple[int, ...] = DEFAULT_SIZES,
    batch_size: int = 100_000,
    say: Callable[[str], None] = lambda message: None,
) -> SliceReport:
    """Measure every size in turn, each on a freshly seeded emulator and scratch database."""
    started = time.perf_counter()
    figures = [
        measure_size(server_dsn=server_dsn, rows=rows, batch_size=batch_size, say=say) for rows in sizes
    ]
    say(f"done in {time.perf_counter() - started:.0f} s")
    return SliceReport(
        batch_size=batch_size,
        connections=DEFAULT_SOURCE_CONNECTIONS,
        machine=machine_facts(server_dsn),
        sizes=figures,
    )
