"""Lineage: `_fdm_synced_at` and `_fdm_run_id` on each row a run writes, and only on those."""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants

from __future__ import annotations

import datetime as dt

from syncengine.pipeline.spec import SyncMode

T0 = dt.datetime(2024, 3, 1, 9, 0, 0)


def at(minutes: float) -> str:
    return (T0 + dt.timedelta(minutes=minutes)).isoformat(sep=" ")


def _orders(source) -> None:
    source.sql(
        f"CREATE TABLE {source.table('ORDERS')} (ID NUMBER(38,0) NOT NULL, QTY NUMBER(10,0), "
        "UPDATED_AT TIMESTAMP_NTZ NOT NULL, PRIMARY KEY (ID))"
    )
    for key in range(1, 5):
        source.sql(
            f"INSERT INTO {source.table('ORDERS')} VALUES (?, ?, CAST(? AS TIMESTAMP_NTZ))",
            (key, key, at(10)),
        )


def _lineage(target) -> dict[int, tuple]:
    return {
        key: (run, synced)
        for key, run, synced in target("SELECT id, _fdm_run_id, _fdm_synced_at FROM public.orders")
    }


def test_lineage_is_written_only_on_rows_the_run_wrote(source, make_spec, sync, target):
    _orders(source)
    spec = make_spec("ORDERS", watermark_column="updated_at", lineage=True)
    sync(spec, run_id="run-1")
    first = _lineage(target)
    # All four rows sit at the watermark, so the next run reads them all again; only id 2 changed.
    source.sql(f"UPDATE {source.table('ORDERS')} SET QTY = 20 WHERE ID = 2")
    source.sql(f"INSERT INTO {source.table('ORDERS')} VALUES (5, 5, CAST(? AS TIMESTAMP_NTZ))", (at(10),))

    result = sync(spec, run_id="run-2")

    assert (result.rows_inserted, result.rows_updated) == (1, 1)
    after = _lineage(target)
    assert {key: run for key, (run, _) in after.items()} == {
        1: "run-1",
        2: "run-2",
        3: "run-1",
        4: "run-1",
        5: "run-2",
    }
    assert after[1] == first[1]  # an unchanged row keeps its time too
    assert after[2][1] > first[2][1]
    assert after[2][1] == after[5][1]  # one publishing transaction, one time


def test_a_full_load_writes_lineage_on_every_row(source, make_spec, sync, target):
    _orders(source)
    sync(make_spec("ORDERS", mode=SyncMode.FULL, lineage=True), run_id="full-1")

    assert target("SELECT DISTINCT _fdm_run_id FROM public.orders") == [("full-1",)]
    assert target("SELECT count(*) FROM public.orders WHERE _fdm_synced_at IS NULL") == [(0,)]


def test_lineage_switched_on_later_adds_its_columns(source, make_spec, sync, target):
    _orders(source)
    sync(make_spec("ORDERS", watermark_column="updated_at"))
    source.sql(
        f"UPDATE {source.table('ORDERS')} SET QTY = 30, UPDATED_AT = CAST(? AS TIMESTAMP_NTZ) WHERE ID = 3",
        (at(20),),
    )

    sync(make_spec("ORDERS", watermark_column="updated_at", lineage=True), run_id="later")

    assert target("SELECT id, _fdm_run_id FROM public.orders WHERE _fdm_run_id IS NOT NULL") == [(3, "later")]
