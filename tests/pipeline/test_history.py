"""History (SCD type 2): every version of a row is kept with its validity; a changed row closes the current
version and opens a new one, a deleted key closes it, and the table can be read as of any time."""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants

from __future__ import annotations

import datetime as dt

import pytest

from syncengine.pipeline.errors import ConfigurationError
from syncengine.pipeline.spec import DeleteMode, DeletesSpec, SyncMode

T0 = dt.datetime(2024, 3, 1, 9, 0, 0)


def at(minutes: float) -> str:
    return (T0 + dt.timedelta(minutes=minutes)).isoformat(sep=" ")


def _rates(source, rows: int = 3) -> None:
    source.sql(
        f"CREATE TABLE {source.table('RATES')} (ID NUMBER(38,0) NOT NULL, RATE NUMBER(10,4), "
        "UPDATED_AT TIMESTAMP_NTZ NOT NULL, PRIMARY KEY (ID))"
    )
    for key in range(1, rows + 1):
        source.sql(
            f"INSERT INTO {source.table('RATES')} VALUES (?, ?, CAST(? AS TIMESTAMP_NTZ))",
            (key, key, at(key)),
        )


def _set_rate(source, key: int, rate: int, minutes: float) -> None:
    source.sql(
        f"UPDATE {source.table('RATES')} SET RATE = ?, UPDATED_AT = CAST(? AS TIMESTAMP_NTZ) WHERE ID = ?",
        (rate, at(minutes), key),
    )


def _versions(target, key: int) -> list[tuple]:
    return target(
        "SELECT rate, _fdm_valid_to IS NULL, _fdm_is_current FROM public.rates WHERE id = %s "
        "ORDER BY _fdm_valid_from",
        (key,),
    )


def _as_of(target, moment: dt.datetime) -> dict[int, str]:
    rows = target(
        "SELECT id, rate FROM public.rates WHERE _fdm_valid_from <= %s "
        "AND (_fdm_valid_to IS NULL OR _fdm_valid_to > %s) ORDER BY id",
        (moment, moment),
    )
    return {key: str(rate) for key, rate in rows}


def _now(target) -> dt.datetime:
    return target("SELECT clock_timestamp()")[0][0]


@pytest.mark.parametrize("mode", [SyncMode.INCREMENTAL, SyncMode.FULL])
def test_history_keeps_every_version_and_answers_as_of_a_time(source, make_spec, sync, target, mode):
    _rates(source)
    spec = make_spec("RATES", watermark_column="updated_at", mode=mode, history=True)
    sync(spec)
    before_change = _now(target)
    _set_rate(source, 2, 20, 60)

    result = sync(spec)

    assert (result.rows_inserted, result.rows_updated) == (0, 1)
    assert _versions(target, 2) == [(2, False, False), (20, True, True)]
    assert _versions(target, 1) == [(1, True, True)]  # unchanged: no new version
    assert _as_of(target, before_change) == {1: "1.0000", 2: "2.0000", 3: "3.0000"}
    assert _as_of(target, _now(target)) == {1: "1.0000", 2: "20.0000", 3: "3.0000"}
    assert target("SELECT id, rate FROM public.rates_current ORDER BY id") == [(1, 1), (2, 20), (3, 3)]


def test_a_full_load_closes_the_versions_of_rows_gone_from_the_source(source, make_spec, sync, target):
    _rates(source)
    spec = make_spec("RATES", mode=SyncMode.FULL, history=True)
    sync(spec)
    source.sql(f"DELETE FROM {source.table('RATES')} WHERE ID = 3")

    result = sync(spec)

    assert result.rows_deleted == 1
    assert _versions(target, 3) == [(3, False, False)]
    assert target("SELECT count(*) FROM public.rates_current") == [(2,)]


def test_incremental_deletes_close_the_current_version_and_a_returning_key_opens_a_new_one(
    source, make_spec, sync, target
):
    _rates(source, rows=4)
    spec = make_spec(
        "RATES",
        watermark_column="updated_at",
        history=True,
        deletes=DeletesSpec(mode=DeleteMode.HARD, max_ratio=0.5),
    )
    sync(spec)
    source.sql(f"DELETE FROM {source.table('RATES')} WHERE ID = 1")
    assert sync(spec).rows_deleted == 1
    source.sql(f"INSERT INTO {source.table('RATES')} VALUES (1, 7, CAST(? AS TIMESTAMP_NTZ))", (at(90),))

    result = sync(spec)

    assert result.rows_inserted == 1
    assert _versions(target, 1) == [(1, False, False), (7, True, True)]


def test_the_history_target_is_keyed_by_key_and_valid_from(source, make_spec, sync, target):
    _rates(source)
    sync(make_spec("RATES", watermark_column="updated_at", history=True))

    key = target(
        "SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i "
        "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = 'public.rates'::regclass AND i.indisprimary"
    )
    assert key == [(["id", "_fdm_valid_from"],)]


def test_history_cannot_be_switched_on_for_an_existing_plain_target(source, make_spec, sync, target):
    _rates(source)
    sync(make_spec("RATES", watermark_column="updated_at"))

    with pytest.raises(ConfigurationError, match="created without it"):
        sync(make_spec("RATES", watermark_column="updated_at", history=True))
    assert target("SELECT count(*) FROM public.rates") == [(3,)]


def test_history_needs_a_primary_key(source, make_spec, sync):
    source.sql(f"CREATE TABLE {source.table('NOTES')} (TXT TEXT)")
    with pytest.raises(ConfigurationError, match="primary_key"):
        sync(make_spec("NOTES", history=True))


def test_a_new_source_column_keeps_the_current_view_complete(source, make_spec, sync, target):
    _rates(source)
    spec = make_spec("RATES", watermark_column="updated_at", history=True)
    sync(spec)
    source.sql(f"ALTER TABLE {source.table('RATES')} ADD COLUMN NOTE TEXT")

    sync(spec)

    columns = [
        name
        for (name,) in target(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'rates_current' ORDER BY ordinal_position"
        )
    ]
    assert "note" in columns


def test_each_version_carries_the_lineage_of_the_run_that_wrote_it(source, make_spec, sync, target):
    _rates(source)
    spec = make_spec("RATES", watermark_column="updated_at", history=True, lineage=True)
    sync(spec, run_id="first")
    _set_rate(source, 3, 30, 60)

    sync(spec, run_id="second")

    assert target(
        "SELECT id, rate, _fdm_run_id, _fdm_synced_at = _fdm_valid_from FROM public.rates ORDER BY id, _fdm_valid_from"
    ) == [(1, 1, "first", True), (2, 2, "first", True), (3, 3, "first", True), (3, 30, "second", True)]
