"""A large, realistic run history for scale tests and the load benchmark.

`history_seed` creates N tables through the ORM (so the signals create their django-q2 schedules, as an
import would) and M runs spread over them and over the last 30 days, written with `bulk_create` (a real
history of that size would take a month to record). Statuses are mixed like a working installation's: mostly
successes, some failures (transient and terminal), skips and cancellations, and a few runs still queued or
running. The same seed gives the same history. The run table is analyzed at the end, as autovacuum would have
done over those 30 days.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from syncconfig.models import TableConfig
from syncengine.choices import ErrorKind, RunStatus, RunTrigger
from syncengine.models import SyncRun

HISTORY_DAYS = 30
BATCH_SIZE = 5000
# Terminal outcomes and their weights (out of 100).
_OUTCOMES = (
    (RunStatus.SUCCEEDED, 88),
    (RunStatus.FAILED, 7),
    (RunStatus.SKIPPED, 3),
    (RunStatus.CANCELLED, 2),
)
# Every this-many-th table has its newest run still in flight (alternately queued and running).
_ACTIVE_EVERY = 25


@dataclass(frozen=True)
class History:
    """What `history_seed` wrote."""

    tables: list[TableConfig]
    runs: int


def history_seed(*, tables: int, runs: int, prefix: str = "load", seed: int = 1) -> History:
    """Create `tables` scheduled tables named `<prefix>_0001`... and `runs` runs spread over them and over the
    last 30 days (newest run of every 25th table queued or running, the rest finished with mixed outcomes)."""
    if tables <= 0 or runs < 0:
        raise ValueError(f"history_seed needs tables > 0 and runs >= 0 (got tables={tables}, runs={runs})")
    rng = random.Random(seed)
    now = timezone.now()
    with transaction.atomic():
        configs = [_table_create(name=f"{prefix}_{i:04d}", index=i) for i in range(1, tables + 1)]
    newest: dict[int, SyncRun] = {}
    pending: list[SyncRun] = []
    for queued_at, config in sorted(_run_slots(rng, configs, runs, now), key=lambda slot: slot[0]):
        run = _finished_run(rng, config, queued_at)
        newest[config.pk] = run
        pending.append(run)
    for index, config in enumerate(configs):
        latest = newest.get(config.pk)
        if latest is not None and index % _ACTIVE_EVERY == 0:
            _make_active(latest, queued=(index // _ACTIVE_EVERY) % 2 == 0)
    for start in range(0, len(pending), BATCH_SIZE):
        SyncRun.objects.bulk_create(pending[start : start + BATCH_SIZE], batch_size=BATCH_SIZE)
    _analyze()
    return History(tables=configs, runs=len(pending))


def _analyze() -> None:
    # A history that grew over a month has been analyzed by autovacuum many times; one written in a minute has
    # not, and until then the planner takes the run table for a few rows (measured: the dashboard's table
    # query took 8 s instead of 0.1 s on 100,000 runs). Measure what an installation would see.
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(SyncRun._meta.db_table)}")


def _table_create(*, name: str, index: int) -> TableConfig:
    # Hourly and daily schedules alike; a few tables are manual or disabled, as in a real installation.
    return TableConfig.objects.create(
        name=name,
        snowflake_database="FDM_LOAD",
        snowflake_schema="PUBLIC",
        snowflake_table=name.upper(),
        postgres_schema="public",
        postgres_table=name,
        sync_mode="incremental" if index % 3 else "full",
        incremental_column="UPDATED_AT" if index % 3 else "",
        primary_key=["ID"] if index % 3 else [],
        schedule="daily" if index % 4 == 0 else "hourly",
        enabled=index % 50 != 0,
    )


def _run_slots(
    rng: random.Random, configs: list[TableConfig], runs: int, now: datetime
) -> list[tuple[datetime, TableConfig]]:
    span = HISTORY_DAYS * 86400
    return [(now - timedelta(seconds=rng.uniform(60, span)), configs[i % len(configs)]) for i in range(runs)]


def _finished_run(rng: random.Random, config: TableConfig, queued_at: datetime) -> SyncRun:
    status = rng.choices([s for s, _ in _OUTCOMES], weights=[w for _, w in _OUTCOMES])[0]
    started = queued_at + timedelta(seconds=rng.uniform(0.1, 5))
    seconds = rng.uniform(2, 120)
    rows = rng.randint(0, 200_000)
    run = SyncRun(
        table=config,
        table_name=config.name,
        trigger=RunTrigger.SCHEDULE if rng.random() < 0.9 else RunTrigger.API,
        status=status,
        mode=config.sync_mode,
        config_hash=f"{config.pk:064x}",
        task_id=f"{rng.getrandbits(64):016x}",
        executor=f"worker-{rng.randint(1, 4)}:{rng.randint(1000, 9999)}",
        queued_at=queued_at,
        started_at=started,
        finished_at=started + timedelta(seconds=seconds),
        heartbeat_at=started + timedelta(seconds=seconds),
    )
    if status == RunStatus.SUCCEEDED:
        run.rows_extracted = run.rows_loaded = rows
        run.rows_inserted = rows // 10
        run.rows_updated = rows - rows // 10
        run.bytes_extracted = run.bytes_loaded = rows * 120
        run.extract_seconds, run.load_seconds = seconds * 0.5, seconds * 0.3
        run.transform_seconds, run.publish_seconds = seconds * 0.1, seconds * 0.1
    elif status == RunStatus.FAILED:
        transient = rng.random() < 0.6
        run.error_kind = ErrorKind.TRANSIENT if transient else ErrorKind.TERMINAL
        run.error_message = (
            f"{config.name}: the Snowflake connection was reset during extract"
            if transient
            else f"{config.name}: column AMOUNT changed type from NUMBER(18,2) to VARCHAR"
        )
    elif status == RunStatus.SKIPPED:
        run.skip_reason = f"{config.name}: another run holds the table"
    return run


def _make_active(run: SyncRun, *, queued: bool) -> None:
    run.status = RunStatus.QUEUED if queued else RunStatus.RUNNING
    run.finished_at = None
    run.error_kind = run.error_message = run.skip_reason = ""
    if queued:
        run.started_at = run.heartbeat_at = None
        run.executor = ""
    else:
        run.heartbeat_at = timezone.now()
        run.stage = "extract"
