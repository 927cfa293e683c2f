"""The sync benchmark: how fast and how lean each part of a run is, measured side by side in one process.

Measured, for a TRANSACTIONS-like table of N rows (11 columns):
1. reading the source alone (`fetch_arrow_batches`),
2. loading the same Arrow data alone: ADBC binary COPY (the route the pipeline uses) and, for comparison,
   pyarrow's CSV writer feeding psycopg `COPY ... (FORMAT csv)`,
3. full syncs (first load into a new table, then a full refresh replacing every row),
4. the same full sync with protected columns: ACCOUNT_ID and AMOUNT encrypted, METADATA compressed (and
   each of the two alone, and with a blind index on ACCOUNT_ID), beside the plain run,
5. incremental syncs (a 1% update + 1% insert delta, then a run with no change),
6. an incremental sync with hard deletes after 0.1% of the rows were deleted: its key-only scan reads every
   source key into a key table and anti-joins the target against it.

The Snowflake emulator runs in a child process, so the memory figures are the pipeline's own (RSS sampled
every 10 ms; the emulator, like Snowflake, is elsewhere) and it does not compete for this process's GIL. The
target is a scratch database created, and dropped afterwards, on the given PostgreSQL server.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import os
import platform
import resource
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import adbc_driver_postgresql
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

from syncengine.dev.emulator import emulator, emulator_settings
from syncengine.dev.sampledata import insert_transactions, seed_transactions
from syncengine.pipeline.load import DEFAULT_COPY_STREAMS
from syncengine.pipeline.protection.keyring import Keyring
from syncengine.pipeline.runner import run_sync
from syncengine.pipeline.source import SnowflakeSettings
from syncengine.pipeline.spec import (
    CompressionMode,
    CompressionSpec,
    DeleteMode,
    DeletesSpec,
    EncryptionMode,
    EncryptionSpec,
    SourceRef,
    SyncMode,
    TableSpec,
    TargetRef,
)

DATABASE = "FDM_BENCH"
SCHEMA = "PUBLIC"
TABLE = "TRANSACTIONS"
DELTA_TIMESTAMP = "2030-01-01 00:00:00"
STAGING_DDL = (
    "txn_id numeric(38,0), account_id numeric(38,0), amount numeric(18,2), currency text, description text, "
    "category text, booked_at timestamp, value_date date, is_reversal boolean, metadata jsonb, updated_at timestamp"
)


@dataclass
class Measurement:
    name: str
    rows: int
    seconds: float
    peak_rss_mb: float
    detail: str = ""

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


@dataclass
class BenchmarkReport:
    rows: int
    batch_size: int
    machine: dict[str, str]
    baseline_rss_mb: float = 0.0
    seed_seconds: float = 0.0
    measurements: list[Measurement] = field(default_factory=list)

    def to_markdown(self) -> str:
        lines = [
            f"Rows: {self.rows:,} (batch size {self.batch_size:,}); emulator seeded in {self.seed_seconds:.1f} s.",
            "",
            "| step | rows | seconds | rows/s | peak RSS (MB) | detail |",
            "| --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for m in self.measurements:
            lines.append(
                f"| {m.name} | {m.rows:,} | {m.seconds:.2f} | {m.rows_per_second:,.0f} | {m.peak_rss_mb:,.0f} | "
                f"{m.detail} |"
            )
        lines += ["", f"RSS before the first step: {self.baseline_rss_mb:,.0f} MB.", ""]
        lines += [f"- {key}: {value}" for key, value in self.machine.items()]
        return "\n".join(lines)


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakMemory:
    """The highest RSS seen while the block runs, sampled every 10 ms."""

    def __init__(self) -> None:
        self.peak_mb = _rss_mb()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(0.01):
            self.peak_mb = max(self.peak_mb, _rss_mb())

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, _rss_mb())


@contextmanager
def scratch_database(server_dsn: str) -> Iterator[str]:
    name = f"fdm_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield psycopg.conninfo.make_conninfo(server_dsn, dbname=name)
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class SeededSource:
    """A benchmark's parts: the emulator's settings, the open connection that seeded it, the scratch target."""

    report: BenchmarkReport
    settings: SnowflakeSettings
    seeding: Any  # a snowflake.connector connection, kept open to change the source during the benchmark
    dsn: str


@contextmanager
def seeded_source(
    *, server_dsn: str, rows: int, batch_size: int, say: Callable[[str], None]
) -> Iterator[SeededSource]:
    """The emulator holding `rows` transactions and a scratch database on `server_dsn`, both gone afterwards;
    the seeding time is in the report."""
    with emulator() as kwargs, scratch_database(server_dsn) as dsn:
        import snowflake.connector

        report = BenchmarkReport(rows=rows, batch_size=batch_size, machine=machine_facts(dsn))
        say(f"seeding {rows:,} rows into the emulator")
        seeding = snowflake.connector.connect(**kwargs, platform_detection_timeout_seconds=0)
        try:
            started = time.perf_counter()
            seed_transactions(seeding, database=DATABASE, schema=SCHEMA, table=TABLE, rows=rows)
            report.seed_seconds = time.perf_counter() - started
            yield SeededSource(report=report, settings=emulator_settings(kwargs), seeding=seeding, dsn=dsn)
        finally:
            seeding.close()  # closing a closed connection does nothing


def machine_facts(target_dsn: str) -> dict[str, str]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            model = next(
                (line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), model
            )
    except OSError:
        pass
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    with psycopg.connect(target_dsn) as conn:
        server = conn.info.parameter_status("server_version")
    return {
        "CPU": f"{os.cpu_count()} cores, {model}",
        "memory": f"{memory_gib:.0f} GiB",
        "PostgreSQL": f"{server} on the same machine",
        "Python": platform.python_version(),
        "pyarrow": pa.__version__,
        "adbc-driver-postgresql": adbc_driver_postgresql.__version__,
    }


def _measure(report: BenchmarkReport, name: str, work: Callable[[], tuple[int, str]]) -> None:
    # Start each step from the same footing: memory a previous step freed is handed back first.
    gc.collect()
    pa.default_memory_pool().release_unused()
    with PeakMemory() as memory:
        started = time.perf_counter()
        rows, detail = work()
        seconds = time.perf_counter() - started
    report.measurements.append(Measurement(name, rows, seconds, memory.peak_mb, detail))


def _read_source(connect: Callable[[], Any]) -> tuple[list[pa.RecordBatch], int]:
    conn = connect()
    try:
        cursor = conn.cursor()
        cursor.execute(f'SELECT * FROM "{DATABASE}"."{SCHEMA}"."{TABLE}"')  # noqa: S608 - constants
        batches = [
            batch
            for table in cursor.fetch_arrow_batches(force_microsecond_precision=True)
            for batch in table.to_batches()
        ]
    finally:
        conn.close()
    return batches, sum(batch.num_rows for batch in batches)


def _wire_batches(batches: list[pa.RecordBatch], batch_size: int) -> list[pa.RecordBatch]:
    """The extracted batches cast as the pipeline casts them for the staging table."""
    from syncengine.pipeline.transform.casts import cast_column

    wire: list[pa.DataType] = [
        pa.decimal128(38, 0),
        pa.decimal128(38, 0),
        pa.decimal128(18, 2),
        pa.string(),
        pa.string(),
        pa.string(),
        pa.timestamp("us"),
        pa.date32(),
        pa.bool_(),
        pa.json_(),
        pa.timestamp("us"),
    ]
    names = [name.lower() for name in batches[0].schema.names]
    table = pa.Table.from_batches(batches)
    return [
        pa.RecordBatch.from_arrays(
            [cast_column(batch.column(i), wire[i]) for i in range(len(wire))], names=names
        )
        for batch in table.to_batches(max_chunksize=batch_size)
    ]


def _copy_adbc(dsn: str, batches: list[pa.RecordBatch], streams: int) -> tuple[int, str]:
    """Binary COPY over `streams` connections in parallel, as the pipeline's staging writer does."""
    import adbc_driver_postgresql.dbapi as adbc

    table = f"bench_copy_adbc_{streams}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE UNLOGGED TABLE {table} ({STAGING_DDL})")

    def copy(share: list[pa.RecordBatch]) -> None:
        with adbc.connect(dsn) as conn, conn.cursor() as cursor:
            for batch in share:
                cursor.adbc_ingest(table, batch, mode="append")
            conn.commit()

    threads = [threading.Thread(target=copy, args=(batches[index::streams],)) for index in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
        copied = row[0] if row else 0
        conn.execute(f"DROP TABLE {table}")
    return copied, f"binary COPY of the cast batches, {streams} connection(s)"


def _copy_csv(dsn: str, batches: list[pa.RecordBatch]) -> tuple[int, str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE UNLOGGED TABLE bench_copy_csv ({STAGING_DDL})")
        with conn.cursor() as cursor, cursor.copy("COPY bench_copy_csv FROM STDIN (FORMAT csv)") as copy:
            options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
            for batch in batches:
                plain = pa.RecordBatch.from_arrays(
                    [
                        column.storage if isinstance(column, pa.ExtensionArray) else column
                        for column in batch.columns
                    ],
                    names=batch.schema.names,
                )
                sink = pa.BufferOutputStream()
                pacsv.write_csv(plain, sink, options)
                copy.write(memoryview(sink.getvalue()))
        conn.execute("DROP TABLE bench_copy_csv")
    return sum(
        batch.num_rows for batch in batches
    ), "CSV text COPY, 1 connection (not used: no binary columns)"


def _sync(spec: TableSpec, settings: SnowflakeSettings, dsn: str, **kwargs: Any) -> tuple[int, str]:
    result = run_sync(spec, source=settings, target_dsn=dsn, **kwargs)
    detail = (
        f"mode {result.mode}: extract {result.extract.seconds:.2f} s, transform {result.transform.seconds:.2f} s, "
        f"COPY {result.load.seconds:.2f} s, publish {result.publish_seconds:.2f} s; "
        f"{result.rows_inserted:,} inserted, {result.rows_updated:,} updated"
    )
    if scan := result.checks.get("delete_scan"):
        detail += (
            f"; delete scan: {scan['keys']:,} keys in {scan['seconds']:.2f} s ({scan['bytes'] / 2**20:,.1f} MB), "
            f"{result.rows_deleted:,} deleted"
        )
    if result.bytes_after_compression:
        detail += (
            f"; compressed {result.bytes_before_compression / 2**20:,.1f} MB to "
            f"{result.bytes_after_compression / 2**20:,.1f} MB "
            f"({result.bytes_before_compression / result.bytes_after_compression:.1f}x)"
        )
    return result.extract.rows, detail


def _protected_variants(spec: TableSpec) -> list[tuple[str, TableSpec]]:
    """The plain benchmark table with protected columns, each variant into a table of its own."""
    encrypted = EncryptionSpec(mode=EncryptionMode.COLUMNS, columns=("ACCOUNT_ID", "AMOUNT"))
    compressed = CompressionSpec(mode=CompressionMode.COLUMNS, columns=("METADATA",))
    searchable = EncryptionSpec(
        mode=EncryptionMode.COLUMNS, columns=("ACCOUNT_ID", "AMOUNT"), searchable=("ACCOUNT_ID",)
    )
    variants = [
        ("full sync, 2 encrypted + 1 compressed column", "protected", encrypted, compressed),
        ("full sync, 2 encrypted columns", "encrypted", encrypted, CompressionSpec()),
        ("full sync, 1 compressed column", "compressed", EncryptionSpec(), compressed),
        ("full sync, 2 encrypted (1 blind-indexed) + 1 compressed", "searchable", searchable, compressed),
    ]
    return [
        (
            label,
            dataclasses.replace(
                spec,
                name=f"benchmark_{suffix}",
                target=TargetRef("public", f"transactions_{suffix}"),
                mode=SyncMode.FULL,
                watermark_column=None,
                encryption=encryption,
                compression=compression,
            ),
        )
        for label, suffix, encryption, compression in variants
    ]


def run_benchmark(
    *,
    server_dsn: str,
    rows: int = 1_000_000,
    batch_size: int = 100_000,
    say: Callable[[str], None] = lambda message: None,
    small_tables: int = 0,
) -> BenchmarkReport:
    """Seed the emulator with `rows` transactions and measure each step into a scratch database; then the
    ratios of `benchmark_extras` (and, when `small_tables`, that many small tables through two workers)."""
    with seeded_source(server_dsn=server_dsn, rows=rows, batch_size=batch_size, say=say) as seeded:
        report, settings, seeding, dsn = seeded.report, seeded.settings, seeded.seeding, seeded.dsn
        report.baseline_rss_mb = _rss_mb()

        say("reading the source alone")
        extracted: list[pa.RecordBatch] = []

        def read() -> tuple[int, str]:
            batches, count = _read_source(settings.connect)
            extracted.extend(batches)
            return (
                count,
                f"{len(batches)} Arrow batch(es) from the emulator, {sum(b.nbytes for b in batches) / 2**20:,.0f} MB",
            )

        _measure(report, "source read (fetch_arrow_batches)", read)
        wire = _wire_batches(extracted, batch_size)
        extracted.clear()
        say("loading the same data alone")
        _measure(report, "COPY alone: ADBC binary", lambda: _copy_adbc(dsn, wire, 1))
        _measure(
            report, "COPY alone: ADBC binary, parallel", lambda: _copy_adbc(dsn, wire, DEFAULT_COPY_STREAMS)
        )
        _measure(report, "COPY alone: pyarrow CSV + psycopg", lambda: _copy_csv(dsn, wire))
        wire.clear()

        spec = TableSpec(
            name="benchmark_transactions",
            source=SourceRef(DATABASE, SCHEMA, TABLE),
            target=TargetRef("public", "transactions"),
            mode=SyncMode.INCREMENTAL,
            watermark_column="UPDATED_AT",
            batch_size=batch_size,
        )
        say("full sync into a new table")
        _measure(report, "full sync, new table", lambda: _sync(spec, settings, dsn))
        say("full refresh replacing every row")
        _measure(
            report, "full sync, replacing all rows", lambda: _sync(spec, settings, dsn, full_refresh=True)
        )
        keyring = Keyring.generate("benchmark")
        for label, variant in _protected_variants(spec):
            say(label)
            _measure(report, label, functools.partial(_sync, variant, settings, dsn, keyring=keyring))

        delta = max(rows // 100, 1)
        cursor = seeding.cursor()
        cursor.execute(
            f'UPDATE "{DATABASE}"."{SCHEMA}"."{TABLE}" SET AMOUNT = AMOUNT + 1, '  # noqa: S608 - constants
            f"UPDATED_AT = DATEADD(second, TXN_ID, '{DELTA_TIMESTAMP}'::TIMESTAMP_NTZ) WHERE MOD(TXN_ID, 100) = 0"
        )
        # New rows continue the booking sequence, so their UPDATED_AT lies past the watermark too.
        insert_transactions(
            seeding, database=DATABASE, schema=SCHEMA, table=TABLE, rows=delta, first_id=rows + 1
        )
        say("incremental sync of a 1% update + 1% insert delta")
        _measure(report, "incremental sync, 1% changed + 1% new", lambda: _sync(spec, settings, dsn))
        say("incremental sync with no change")
        _measure(report, "incremental sync, no change", lambda: _sync(spec, settings, dsn))
        cursor.execute(f'DELETE FROM "{DATABASE}"."{SCHEMA}"."{TABLE}" WHERE MOD(TXN_ID, 1000) = 1')  # noqa: S608
        with_deletes = dataclasses.replace(spec, deletes=DeletesSpec(mode=DeleteMode.HARD))
        say("incremental sync with hard deletes (0.1% of the rows deleted): key-only scan")
        _measure(
            report,
            "incremental sync, hard deletes (key-only scan)",
            lambda: _sync(with_deletes, settings, dsn),
        )
        from syncengine.dev.benchmark_extras import measure_extras

        measure_extras(seeded, spec, rounds=2, small_tables=small_tables, say=say)
        return report
