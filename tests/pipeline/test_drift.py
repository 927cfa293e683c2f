"""Schema drift: added, dropped and retyped source columns under each drift policy."""

# ruff: noqa: S608 - the SQL here is built from the tests' own constants

from __future__ import annotations

from decimal import Decimal

import pytest

from syncengine.pipeline.errors import RunCancelled, SchemaDriftError
from syncengine.pipeline.spec import DriftPolicy

ORIGINAL = "ID NUMBER(38,0) NOT NULL, AMOUNT NUMBER(10,2), NOTE VARCHAR, PRIMARY KEY (ID)"
ADDED = "ID NUMBER(38,0) NOT NULL, AMOUNT NUMBER(10,2), NOTE VARCHAR, REGION VARCHAR, PRIMARY KEY (ID)"
DROPPED = "ID NUMBER(38,0) NOT NULL, AMOUNT NUMBER(10,2), PRIMARY KEY (ID)"
WIDENED = "ID NUMBER(38,0) NOT NULL, AMOUNT NUMBER(18,4), NOTE VARCHAR, PRIMARY KEY (ID)"
REKINDED = "ID NUMBER(38,0) NOT NULL, AMOUNT VARCHAR, NOTE VARCHAR, PRIMARY KEY (ID)"


def _table(source, columns: str, rows: list[str]) -> None:
    source.sql(f"CREATE OR REPLACE TABLE {source.table('BOOK')} ({columns})")
    for row in rows:
        source.sql(f"INSERT INTO {source.table('BOOK')} VALUES ({row})")


def _columns(target) -> dict[str, str]:
    return dict(
        target(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'public.book'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
        )
    )


@pytest.fixture
def synced(source, make_spec, sync):
    _table(source, ORIGINAL, ["1, 1.50, 'one'"])
    sync(make_spec("BOOK"))


def test_evolve_adds_a_new_source_column(source, make_spec, sync, target, synced):
    _table(source, ADDED, ["1, 1.50, 'one', 'EU'", "2, 2.50, 'two', NULL"])
    result = sync(make_spec("BOOK"))

    assert result.drift == ["added column region text"]
    assert _columns(target)["region"] == "text"
    assert target("SELECT id, region FROM public.book ORDER BY id") == [(1, "EU"), (2, None)]


def test_evolve_keeps_a_dropped_column_with_nulls_in_new_rows(source, make_spec, sync, target, synced):
    _table(source, DROPPED, ["1, 1.50", "2, 2.50"])
    result = sync(make_spec("BOOK"))

    assert result.drift == ["column note is no longer in the source; kept, NULL in new rows"]
    assert "note" in _columns(target)
    assert target("SELECT id, note FROM public.book ORDER BY id") == [(1, None), (2, None)]


def test_evolve_widens_a_number_losslessly(source, make_spec, sync, target, synced):
    _table(source, WIDENED, ["1, 12345678901234.5678, 'big'"])
    result = sync(make_spec("BOOK"))

    assert result.drift == ["widened column amount from numeric(10,2) to numeric(18,4)"]
    assert _columns(target)["amount"] == "numeric(18,4)"
    assert target("SELECT amount FROM public.book") == [(Decimal("12345678901234.5678"),)]


def test_evolve_stops_on_a_change_of_kind(source, make_spec, sync, target, synced):
    _table(source, REKINDED, ["1, 'abc', 'one'"])
    with pytest.raises(SchemaDriftError, match="incompatible type change"):
        sync(make_spec("BOOK"))
    assert _columns(target)["amount"] == "numeric(10,2)"
    assert target("SELECT amount FROM public.book") == [(Decimal("1.50"),)]


@pytest.mark.parametrize(
    ("columns", "rows", "mentions"),
    [
        (ADDED, ["1, 1.50, 'one', 'EU'"], "new source column REGION"),
        (DROPPED, ["1, 1.50"], "column note is no longer in the source"),
        (WIDENED, ["1, 1.50, 'one'"], "column amount changed"),
    ],
    ids=["added", "dropped", "retyped"],
)
def test_strict_stops_on_any_difference_before_loading(
    source, make_spec, sync, target, synced, columns, rows, mentions
):
    _table(source, columns, rows)
    with pytest.raises(SchemaDriftError, match="drift policy strict") as raised:
        sync(make_spec("BOOK", drift_policy=DriftPolicy.STRICT))
    assert mentions in str(raised.value)
    assert _columns(target) == {"id": "numeric(38,0)", "amount": "numeric(10,2)", "note": "text"}
    assert target("SELECT id, amount, note FROM public.book") == [(1, Decimal("1.50"), "one")]


def test_ignore_skips_a_new_column_and_never_alters_the_target(source, make_spec, sync, target, synced):
    _table(source, ADDED, ["1, 1.50, 'one', 'EU'", "2, 2.50, 'two', 'US'"])
    result = sync(make_spec("BOOK", drift_policy=DriftPolicy.IGNORE))

    assert result.drift == ["new source column REGION not loaded (drift policy ignore)"]
    assert list(_columns(target)) == ["id", "amount", "note"]
    assert target("SELECT id, note FROM public.book ORDER BY id") == [(1, "one"), (2, "two")]


def test_ignore_loads_shared_columns_when_one_is_dropped(source, make_spec, sync, target, synced):
    _table(source, DROPPED, ["1, 1.50", "3, 3.50"])
    result = sync(make_spec("BOOK", drift_policy=DriftPolicy.IGNORE))

    assert result.drift == ["column note is no longer in the source; kept, NULL in new rows"]
    assert target("SELECT id, amount, note FROM public.book ORDER BY id") == [
        (1, Decimal("1.50"), None),
        (3, Decimal("3.50"), None),
    ]


def test_ignore_loads_a_retyped_column_into_the_targets_type(source, make_spec, sync, target, synced):
    _table(source, WIDENED, ["1, 99.2500, 'fits'"])
    result = sync(make_spec("BOOK", drift_policy=DriftPolicy.IGNORE))

    assert "loaded into the target's numeric(10,2)" in result.drift[0]
    assert _columns(target)["amount"] == "numeric(10,2)"
    assert target("SELECT amount FROM public.book") == [(Decimal("99.25"),)]


def test_a_dropped_column_that_is_not_null_in_the_target_stops_the_run(
    source, make_spec, sync, target, synced
):
    target("UPDATE public.book SET note = 'x'")
    target("ALTER TABLE public.book ALTER COLUMN note SET NOT NULL")
    _table(source, DROPPED, ["1, 1.50"])
    with pytest.raises(SchemaDriftError, match="NOT NULL in the target"):
        sync(make_spec("BOOK"))


def test_drift_changes_are_rolled_back_with_a_failed_run(source, make_spec, sync, target, synced):
    _table(source, ADDED, ["1, 1.50, 'one', 'EU'", "2, 2.50, 'two', 'US'"])
    with pytest.raises(RunCancelled):
        sync(make_spec("BOOK", batch_size=1), should_cancel=lambda: True)
    assert list(_columns(target)) == ["id", "amount", "note"]
