"""Checking a table's configuration against its Snowflake source before any run: the table exists, every column
the configuration names exists (with "did you mean" for a near miss), the columns plan as a run would plan them
(types fdm can load, an orderable incremental column, protection that a run would accept), the key that deletes
and history need is there, and the key is unique in a sample of the source's rows.

Read-only: one catalog query, at most one key query, and nothing written anywhere. Each problem is a finding
that names the configuration key it is about, in the YAML's paths (`encryption.columns[1]`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass, field

from snowflake.connector import SnowflakeConnection

from syncengine.pipeline.errors import PipelineError
from syncengine.pipeline.extract import SourceTable, qualified_source
from syncengine.pipeline.identifiers import find, quote_snowflake
from syncengine.pipeline.protection.plan import plan_protection
from syncengine.pipeline.protection.policy import check_policy
from syncengine.pipeline.schema.columns import TablePlan, plan_columns
from syncengine.pipeline.source import classify_snowflake_error
from syncengine.pipeline.spec import DeleteMode, TableSpec

DEFAULT_SAMPLE_ROWS = 100_000
DUPLICATE_EXAMPLES = 3


@dataclass(frozen=True)
class Finding:
    """One thing checked: `ok`, or the problem in `message`; `path` is the configuration key it is about."""

    check: str
    ok: bool
    message: str
    path: str | None = None


@dataclass(frozen=True)
class PlannedColumn:
    """A source column and what a run would make of it."""

    source_name: str
    source_type: str
    target_name: str | None  # None: not loaded (excluded)
    target_type: str | None
    roles: tuple[str, ...] = ()  # "key", "incremental", "encrypted", "searchable", "compressed"


@dataclass
class SourceCheck:
    table: str
    source: str
    findings: list[Finding] = field(default_factory=list)
    columns: list[PlannedColumn] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(finding.ok for finding in self.findings)

    @property
    def problems(self) -> list[Finding]:
        return [finding for finding in self.findings if not finding.ok]


def check_source(
    conn: SnowflakeConnection, spec: TableSpec, source: SourceTable, *, sample_rows: int = DEFAULT_SAMPLE_ROWS
) -> SourceCheck:
    """Check `spec` against the described `source` table (see the module's docstring).

    1. Every column name the configuration uses must be a column of the source.
    2. Plan the columns and their protection as a run would, and apply the per-source protection policy.
    3. Deletes and history need a key; the key must be unique in the first `sample_rows` rows.
    """
    check = SourceCheck(table=spec.name, source=qualified_source(spec.source))
    actual = [column.name for column in source.columns]
    missing = [
        Finding("columns", False, _not_a_column(name, actual, check.source), path)
        for path, name in configured_names(spec)
        if find(name, actual) is None
    ]
    check.findings.extend(missing)
    if missing:
        return check  # planning would only repeat the first of them
    check.findings.append(Finding("columns", True, f"every configured column is in {check.source}"))
    plan = _plan(spec, source, check)
    if plan is None:
        return check
    check.columns = _planned_columns(spec, source, plan)
    check.findings.append(_key_needed(spec, plan))
    if plan.primary_key:
        check.findings.append(_key_unique_in_sample(conn, spec, plan.primary_key, sample_rows))
    return check


def configured_names(spec: TableSpec) -> Iterator[tuple[str, str]]:
    """(configuration path, column name) for every source column the configuration names."""
    for i, name in enumerate(spec.primary_key):
        yield f"primary_key[{i}]", name
    if spec.watermark_column:
        yield "incremental_column", spec.watermark_column
    for i, name in enumerate(spec.include_columns or ()):
        yield f"columns.include[{i}]", name
    for i, name in enumerate(spec.exclude_columns):
        yield f"columns.exclude[{i}]", name
    for i, name in enumerate(spec.encryption.columns):
        yield f"encryption.columns[{i}]", name
    for i, name in enumerate(spec.encryption.searchable):
        yield f"encryption.searchable[{i}]", name
    for i, name in enumerate(spec.compression.columns):
        yield f"compression.columns[{i}]", name
    for name in spec.column_names:
        yield f"column_names.{name}", name
    for name in spec.clear_columns:
        yield f"clear_columns.{name}", name


def _not_a_column(name: str, actual: list[str], source: str) -> str:
    message = f"{name!r} is not a column of {source}"
    close = difflib.get_close_matches(name.upper(), [column.upper() for column in actual], n=1, cutoff=0.75)
    if close:
        suggestion = next(column for column in actual if column.upper() == close[0])
        message += f"; did you mean {suggestion!r}?"
    return message


def _plan(spec: TableSpec, source: SourceTable, check: SourceCheck) -> TablePlan | None:
    """The columns as a run would plan and protect them, or None with the reason as a finding."""
    try:
        plan = plan_columns(spec, source.columns, source.declared_key)
        planned, protection = plan_protection(spec, plan)
        check_policy(spec, plan, protection)
    except PipelineError as exc:
        where = f"column {exc.column}: " if exc.column else ""
        check.findings.append(Finding("plan", False, f"{where}{exc.message}"))
        return None
    loaded = len([column for column in planned.columns if not column.derived])
    check.findings.append(Finding("plan", True, f"{loaded} of {len(source.columns)} columns would be loaded"))
    return planned


def _planned_columns(spec: TableSpec, source: SourceTable, plan: TablePlan) -> list[PlannedColumn]:
    by_source = {column.source_name: column for column in plan.columns if not column.derived}
    encrypted = _resolved(spec.encryption.columns, source)
    searchable = _resolved(spec.encryption.searchable, source)
    compressed = _resolved(spec.compression.columns, source)
    rows = []
    for column in source.columns:
        planned = by_source.get(column.name)
        roles = [
            role
            for role, applies in (
                ("key", column.name in plan.primary_key),
                ("incremental", plan.watermark is not None and plan.watermark.source_name == column.name),
                ("encrypted", column.name in encrypted),
                ("searchable", column.name in searchable),
                ("compressed", column.name in compressed),
            )
            if applies
        ]
        rows.append(
            PlannedColumn(
                source_name=column.name,
                source_type=column.display_type,
                target_name=planned.target_name if planned else None,
                target_type=planned.target_type if planned else None,
                roles=tuple(roles),
            )
        )
    return rows


def _resolved(names: tuple[str, ...], source: SourceTable) -> set[str]:
    actual = [column.name for column in source.columns]
    return {found for name in names if (found := find(name, actual)) is not None}


def _key_needed(spec: TableSpec, plan: TablePlan) -> Finding:
    needs = [
        what
        for what, applies in (
            ("deletes", spec.deletes.mode != DeleteMode.OFF),
            ("history", spec.history),
        )
        if applies
    ]
    if plan.primary_key:
        return Finding("primary key", True, f"key ({', '.join(plan.primary_key)})")
    if needs:
        return Finding(
            "primary key",
            False,
            f"{' and '.join(needs)} need a primary key: set primary_key (the source declares none)",
            "primary_key",
        )
    return Finding("primary key", True, "no key: incremental runs replace the rows at or above the watermark")


def _key_unique_in_sample(
    conn: SnowflakeConnection, spec: TableSpec, key: tuple[str, ...], sample_rows: int
) -> Finding:
    columns = ", ".join(quote_snowflake(name) for name in key)
    sql = (
        f"SELECT {columns}, COUNT(*) FROM (SELECT {columns} FROM {qualified_source(spec.source)} "  # noqa: S608
        f"LIMIT {int(sample_rows)}) GROUP BY {columns} HAVING COUNT(*) > 1 LIMIT {DUPLICATE_EXAMPLES}"
    )
    cursor = conn.cursor()
    try:
        cursor.execute(sql)
        duplicates = cursor.fetchall()
    except Exception as exc:
        raise classify_snowflake_error(exc, table=spec.name) from exc
    finally:
        cursor.close()
    if not duplicates:
        return Finding("key unique", True, f"no repeated key in a sample of up to {sample_rows:,} rows")
    examples = "; ".join(
        ", ".join(f"{name}={value!r}" for name, value in zip(key, row[:-1], strict=True))
        + f" ({row[-1]} rows)"
        for row in duplicates
    )
    return Finding(
        "key unique",
        False,
        f"the key ({', '.join(key)}) repeats in a sample of the source, e.g. {examples}",
        "primary_key",
    )
