"""The light check after a run: row counts and exact sums of every numeric column, in Snowflake and in
PostgreSQL, over what the run covered.

A full load is checked over the whole table; an incremental run over the range it read, `cursor >= watermark
before` up to the new watermark (a backfill over its own range), on both sides. NUMBER columns are summed exactly (in Snowflake as integers of
their smallest unit, in PostgreSQL as numeric; compared as decimals); FLOAT sums depend on the order of addition, so they agree within a relative 1e-9. Encrypted and
compressed columns are bytea in the target and are not summed (the deep check compares them).

The check never fails the run: its data is published already. A mismatch marks the run's reconciliation status;
a check that cannot run (the source unreachable, say) is recorded as skipped with the reason.

The source is read as the extract saw it: Snowflake's time travel, `AT(STATEMENT => <the extract's query
id>)`, so rows written to Snowflake since the extract make no mismatch (`source_as_of: {"statement": id}`).
Where time travel is not available (a table with DATA_RETENTION_TIME_IN_DAYS = 0, or the emulator, which
does not parse AT), the check reads the source as it is at check time and says so (`source_as_of: "check"`,
with the reason): a row written in between then shows as a mismatch that is no fault of the copy.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import psycopg
from snowflake.connector import SnowflakeConnection
from snowflake.connector import errors as sf_errors

from syncengine.pipeline.bootstrap import SourceFactory, SourceSession
from syncengine.pipeline.errors import PipelineError
from syncengine.pipeline.extract import qualified_source
from syncengine.pipeline.hooks import Log
from syncengine.pipeline.identifiers import quote_postgres, quote_snowflake
from syncengine.pipeline.plan import RunPlan
from syncengine.pipeline.reconcile import canonical
from syncengine.pipeline.reconcile.result import CheckStatus
from syncengine.pipeline.reconcile.shape import CURRENT_VERSION_COLUMN, SOFT_DELETED_COLUMN, table_shape
from syncengine.pipeline.reconcile.sides import QUERY_ID
from syncengine.pipeline.schema.drift import LoadColumn
from syncengine.pipeline.schema.target import inspect_target, qualified
from syncengine.pipeline.source import SnowflakeSettings, classify_snowflake_error
from syncengine.pipeline.source_pool import PooledSource
from syncengine.pipeline.spec import TableSpec
from syncengine.pipeline.typemap import SourceColumn, canonical_snowflake_type
from syncengine.pipeline.watermark import Watermark

EQUAL, MISMATCH, SKIPPED = CheckStatus.EQUAL.value, CheckStatus.MISMATCH.value, CheckStatus.SKIPPED.value
FLOAT_TOLERANCE = 1e-9


def check_after_publish(  # noqa: PLR0913 - the runner's one call; all keyword-only
    plan: RunPlan,
    *,
    source: SnowflakeSettings | SourceFactory | PooledSource,
    target_conn: psycopg.Connection,
    until: Watermark | None,
    as_of: str | None,
    log: Log,
) -> dict[str, Any]:
    """Counts and sums on both sides (the source as of the extract's query `as_of` when Snowflake can);
    returns {"status": equal|mismatch|skipped, ...details}."""
    table = plan.spec.name
    try:
        with SourceSession(source, table=table) as session:
            report = light_check(
                plan, source_conn=session.conn, target_conn=target_conn, until=until, as_of=as_of
            )
    except Exception as exc:  # noqa: BLE001 - the data is published: no failure of the check may fail the run
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        log("warning", "reconciliation check skipped", table=table, error=reason)
        return {"status": SKIPPED, "reason": reason}
    log(
        "warning" if report["status"] == MISMATCH else "info",
        "reconciliation check",
        table=table,
        status=report["status"],
    )
    return report


def light_check(
    plan: RunPlan,
    *,
    source_conn: SnowflakeConnection,
    target_conn: psycopg.Connection,
    until: Watermark | None,
    as_of: str | None = None,
) -> dict[str, Any]:
    summed = [column for column in plan.load_columns if _summable(column)]
    target_sql, target_params = _target_query(plan, summed, until, target_conn)
    source_row, source_as_of = _source_row(plan, summed, until, source_conn, as_of)
    target_row = target_conn.execute(target_sql, target_params).fetchone()
    assert source_row is not None and target_row is not None
    mismatches = []
    if int(source_row[0]) != int(target_row[0]):
        mismatches.append("rows")
    sums: dict[str, dict[str, str | None]] = {}
    for index, column in enumerate(summed, start=1):
        source_sum, target_sum = _unscaled(source_row[index], column.plan.source), target_row[index]
        sums[column.name] = {"source": _text(source_sum), "target": _text(target_sum)}
        if not _sums_agree(column, source_sum, target_sum):
            mismatches.append(column.name)
    return {
        "status": MISMATCH if mismatches else EQUAL,
        "scope": "range" if _read_range(plan, until) is not None else "table",
        "rows": {"source": int(source_row[0]), "target": int(target_row[0])},
        "sums": sums,
        "mismatches": mismatches,
        "source_as_of": source_as_of,
    }


def _source_row(
    plan: RunPlan,
    summed: list[LoadColumn],
    until: Watermark | None,
    conn: SnowflakeConnection,
    as_of: str | None,
) -> tuple[tuple[Any, ...], Any]:
    """The source's counts and sums, as of the extract's statement when time travel answers."""
    if as_of is not None and QUERY_ID.match(as_of):
        sql, params = _source_query(plan, summed, until, as_of=as_of)
        try:
            return _fetch_one(conn, sql, params), {"statement": as_of}
        except PipelineError as exc:
            reason = exc.message.splitlines()[0]
    else:
        reason = "no extract query id"
    sql, params = _source_query(plan, summed, until, as_of=None)
    return _fetch_one(conn, sql, params), {"at": "check", "time_travel": reason}


def _fetch_one(conn: SnowflakeConnection, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...]:
    cursor = conn.cursor()
    try:
        cursor.execute(sql, params or None, _force_qmark_paramstyle=True)  # type: ignore[call-overload]
        row = cursor.fetchone()
    except sf_errors.Error as exc:
        raise classify_snowflake_error(exc, table=None) from exc
    finally:
        cursor.close()
    assert row is not None
    return tuple(row)


def _summable(column: LoadColumn) -> bool:
    return (
        not column.plan.derived
        and column.plan.plain_type is None  # encrypted or compressed: bytea in the target
        and canonical_snowflake_type(column.plan.source.data_type) in ("NUMBER", "FLOAT")
    )


def _source_query(
    plan: RunPlan, summed: list[LoadColumn], until: Watermark | None, *, as_of: str | None
) -> tuple[str, tuple[Any, ...]]:
    sums = "".join(f", {snowflake_sum(column.plan.source)}" for column in summed)
    # The query id is checked against QUERY_ID (a UUID) before it is spelt out: AT takes no bind.
    at = f" AT(STATEMENT => '{as_of}')" if as_of is not None else ""
    sql = f"SELECT COUNT(*){sums} FROM {qualified_source(plan.spec.source)}{at}"  # noqa: S608 - identifiers quoted
    watermark, read = plan.columns.watermark, _read_range(plan, until)
    if watermark is None or read is None:
        return sql, ()
    quoted = quote_snowflake(watermark.source_name)
    low, params = read[0].snowflake_filter(quoted, watermark.source)
    if read[1] is None:
        return f"{sql} WHERE {low}", params
    high, high_params = read[1].snowflake_filter(quoted, watermark.source)
    # `snowflake_filter` spells `column >= value`; the upper end is the same bind, the other way round.
    high = high.replace(f"{quoted} >= ", f"{quoted} <= ", 1)
    return f"{sql} WHERE {low} AND {high}", (*params, *high_params)


def _read_range(plan: RunPlan, until: Watermark | None) -> tuple[Watermark, Watermark | None] | None:
    """The incremental-column range the run read: a backfill's own range, else `since` up to the new
    watermark; None for a full load (the whole table)."""
    if plan.backfill is not None:
        return plan.backfill.start, plan.backfill.end or until
    if not plan.incremental or plan.since is None or until is None:
        return None
    return plan.since, until


def _target_query(
    plan: RunPlan, summed: list[LoadColumn], until: Watermark | None, conn: psycopg.Connection
) -> tuple[str, list[Any]]:
    target = plan.spec.target
    sums = "".join(f", sum({quote_postgres(column.name)})" for column in summed)
    conditions: list[str] = []
    params: list[Any] = []
    existing = inspect_target(conn, target.schema, target.table)
    if existing is not None and existing.column(SOFT_DELETED_COLUMN) is not None:
        conditions.append(f"{SOFT_DELETED_COLUMN} IS NULL")
    if existing is not None and existing.column(CURRENT_VERSION_COLUMN) is not None:
        conditions.append(CURRENT_VERSION_COLUMN)
    name, read = plan.watermark_name, _read_range(plan, until)
    if name is not None and read is not None:
        conditions.append(f"{quote_postgres(name)} >= %s")
        params.append(read[0].value)
        if read[1] is not None:
            conditions.append(f"{quote_postgres(name)} <= %s")
            params.append(read[1].value)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"SELECT count(*){sums} FROM {qualified(target.schema, target.table)}{where}", params  # noqa: S608


def snowflake_sum(column: SourceColumn) -> str:
    """The exact sum of a NUMBER column, as an integer of its smallest unit (`12.34` counts as 1234): a sum of
    NUMBER(38,0) is exact wherever it runs (the emulator sums scaled NUMBERs in double precision); the scale
    is put back by `_unscaled`. FLOAT columns are summed as they are."""
    name = quote_snowflake(column.name)
    if canonical_snowflake_type(column.data_type) == "FLOAT":
        return f"SUM({name})"
    scale = column.scale or 0
    return f"SUM(CAST(CAST({name} AS NUMBER(38,{scale})) * {10**scale} AS NUMBER(38,0)))"


def _unscaled(value: Any, column: SourceColumn) -> Any:
    if value is None or canonical_snowflake_type(column.data_type) == "FLOAT":
        return value
    return Decimal(int(value)).scaleb(-(column.scale or 0))


def _sums_agree(column: LoadColumn, source: Any, target: Any) -> bool:
    return _agree(canonical_snowflake_type(column.plan.source.data_type) == "FLOAT", source, target)


def _agree(is_float: bool, source: Any, target: Any) -> bool:
    if source is None or target is None:
        return source is None and target is None
    if is_float:
        left, right = float(source), float(target)
        if math.isnan(left) or math.isnan(right) or math.isinf(left) or math.isinf(right):
            return str(left) == str(right)
        return math.isclose(left, right, rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE)
    return Decimal(str(source)) == Decimal(str(target))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def reconcile_light(
    spec: TableSpec, *, source_conn: SnowflakeConnection, target_conn: psycopg.Connection, log: Log
) -> dict[str, Any]:
    """The light check over the whole table, outside a run: counts and sums of the clear numeric columns."""
    shape = table_shape(spec, source_conn=source_conn, target_conn=target_conn, log=log)
    summed = [
        column
        for column in (*shape.key, *shape.columns)
        if column.kind in (canonical.NUMBER, canonical.FLOAT) and not column.protected
    ]
    source_sums = "".join(
        f", {snowflake_sum(SourceColumn(column.source_name, 'FLOAT' if column.kind == canonical.FLOAT else 'NUMBER', scale=column.scale))}"
        for column in summed
    )
    cursor = source_conn.cursor()
    try:
        cursor.execute(f"SELECT COUNT(*){source_sums} FROM {shape.source_relation}")  # noqa: S608
        source_row = cursor.fetchone()
    finally:
        cursor.close()
    target_sums = "".join(f", sum({quote_postgres(column.target_name)})" for column in summed)
    where = f" WHERE {shape.target_filter}" if shape.target_filter else ""
    target_row = target_conn.execute(
        f"SELECT count(*){target_sums} FROM {shape.target_relation}{where}"  # noqa: S608
    ).fetchone()
    assert source_row is not None and target_row is not None
    mismatches = ["rows"] if int(source_row[0]) != int(target_row[0]) else []
    sums: dict[str, dict[str, str | None]] = {}
    for index, column in enumerate(summed, start=1):
        kind = "FLOAT" if column.kind == canonical.FLOAT else "NUMBER"
        source_sum = _unscaled(source_row[index], SourceColumn(column.source_name, kind, scale=column.scale))
        sums[column.target_name] = {"source": _text(source_sum), "target": _text(target_row[index])}
        if not _agree(column.kind == canonical.FLOAT, source_sum, target_row[index]):
            mismatches.append(column.target_name)
    return {
        "status": MISMATCH if mismatches else EQUAL,
        "scope": "table",
        "rows": {"source": int(source_row[0]), "target": int(target_row[0])},
        "sums": sums,
        "mismatches": mismatches,
        "source_as_of": {"at": "check"},
    }
