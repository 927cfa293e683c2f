"""A worker's Snowflake sessions are reused from run to run: only cleanly finished sessions, not
after they were idle for too long."""

from __future__ import annotations

from decimal import Decimal

import pytest

from syncengine.pipeline.errors import SourceSchemaError
from syncengine.pipeline.runner import run_sync
from syncengine.pipeline.source_pool import SessionPool


def _ledger(source, ids: list[int]) -> None:
    source.sql(f"CREATE OR REPLACE TABLE {source.table('LEDGER')} (ID NUMBER(38,0) NOT NULL, NOTE VARCHAR)")
    for row_id in ids:
        source.sql(f"INSERT INTO {source.table('LEDGER')} VALUES (?, 'n')", (row_id,))  # noqa: S608


def test_runs_through_a_pool_log_in_once(source, make_spec, settings, scratch_database, target):
    pool = SessionPool()
    _ledger(source, [1, 2])
    spec = make_spec("LEDGER", primary_key=("ID",))
    try:
        for _ in range(3):  # each run: the extract's session, then the check after publishing
            result = run_sync(spec, source=pool.source(settings), target_dsn=scratch_database)
            assert result.checks["reconciliation"]["status"] == "equal"
        assert pool.opened == 1
        assert target("SELECT id FROM public.ledger ORDER BY id") == [(Decimal(1),), (Decimal(2),)]
    finally:
        pool.close_all()


def test_a_session_idle_for_too_long_is_not_reused(settings):
    pool = SessionPool(max_idle_seconds=0)
    try:
        first = pool.acquire(settings)
        pool.release(settings, first)
        second = pool.acquire(settings)
        assert second is not first
        assert pool.opened == 2
        pool.release(settings, second)
    finally:
        pool.close_all()


def test_a_session_idle_past_the_check_is_reused_when_it_answers(settings):
    pool = SessionPool(check_after_seconds=0)
    try:
        first = pool.acquire(settings)
        pool.release(settings, first)
        assert pool.acquire(settings) is first  # it answered SELECT 1
        assert pool.opened == 1
        pool.release(settings, first)
    finally:
        pool.close_all()


def test_a_failed_run_does_not_return_its_session(make_spec, settings, scratch_database):
    pool = SessionPool()
    try:
        with pytest.raises(SourceSchemaError):
            run_sync(make_spec("NO_SUCH_TABLE"), source=pool.source(settings), target_dsn=scratch_database)
        assert pool.opened == 1
        pool.release(settings, pool.acquire(settings))
        assert pool.opened == 2  # the failed run's session was closed, not kept
    finally:
        pool.close_all()
