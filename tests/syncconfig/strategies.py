"""Hypothesis strategies for valid table configurations."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from syncconfig.schema import duration_text
from syncengine.pipeline.identifiers import snowflake_name

PLAIN_NAME = st.from_regex(r"[A-Z][A-Z0-9_]{0,11}", fullmatch=True)
# Quoted Snowflake names: mixed case, spaces, punctuation, non-ASCII letters; printable and trimmed.
ODD_NAME = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")),
    min_size=1,
    max_size=12,
).filter(lambda name: name == name.strip() and name.isprintable())
COLUMN = st.one_of(PLAIN_NAME, PLAIN_NAME.map(str.lower), ODD_NAME)
POSTGRES_NAME = st.one_of(
    st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True),
    ODD_NAME.filter(lambda name: len(name.encode()) <= 63),
).filter(lambda name: not name.lower().startswith("pg_") and name.lower() != "information_schema")
SCHEDULE = st.sampled_from(
    ["hourly", "daily", "manual", "0 6 * * *", "*/15 6-22 * * 1-5", "30 1 1 * *", "@weekly"]
)
REASON = st.text(
    alphabet=st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), min_size=10, max_size=40
).filter(lambda reason: len(reason.strip()) >= 10)
NOTES = st.text(alphabet=st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=40)


def _subset(draw: Any, pool: list[str], *, min_size: int = 0) -> list[str]:
    if len(pool) < min_size:
        return []
    return (
        draw(st.lists(st.sampled_from(pool), min_size=min_size, max_size=len(pool), unique=True))
        if pool
        else []
    )


@st.composite
def table_dicts(draw: Any, name: str, target: tuple[str, str] | None = None) -> dict[str, Any]:
    """A valid table dict in the YAML shape, with every optional key sometimes present."""
    pool = draw(st.lists(COLUMN, min_size=4, max_size=9, unique_by=snowflake_name))
    pool = draw(st.permutations(pool))
    primary_key = pool[: draw(st.integers(0, 2))]
    rest = pool[len(primary_key) :]
    incremental = draw(st.booleans())
    watermark = rest[0] if incremental else None
    others = rest[1:] if incremental else rest
    excluded, others = (
        ([others[-1]], others[:-1]) if draw(st.booleans()) and len(others) > 1 else ([], others)
    )

    target_schema, target_table = target or (draw(POSTGRES_NAME.filter(lambda s: s != "public")), name)
    table: dict[str, Any] = {
        "name": name,
        "snowflake": {"database": draw(PLAIN_NAME), "schema": draw(COLUMN), "table": draw(COLUMN)},
        "postgres": {"schema": target_schema, "table": target_table},
        "sync_mode": "incremental" if incremental else "full",
    }
    if watermark:
        table["incremental_column"] = watermark
    table["schedule"] = draw(SCHEDULE)
    if primary_key:
        table["primary_key"] = list(primary_key)

    selection = draw(st.sampled_from(["none", "include", "exclude"]))
    if selection == "include":
        table["columns"] = {"include": [*primary_key, *([watermark] if watermark else []), *others]}
    elif selection == "exclude" and excluded:
        table["columns"] = {"exclude": excluded}

    encryption = draw(st.sampled_from(["off", "all", "all_searchable", "columns"]))
    if encryption == "off" or (encryption == "columns" and not others):
        table["encryption"] = False
    elif encryption == "all":
        table["encryption"] = True
    elif encryption == "all_searchable" and others:
        table["encryption"] = {"all": True, "searchable": _subset(draw, others, min_size=1)}
    else:
        encrypted = _subset(draw, others, min_size=1)
        block: dict[str, Any] = {"columns": encrypted}
        searchable = _subset(draw, encrypted)
        if searchable:
            block["searchable"] = searchable
        table["encryption"] = block if encrypted else False

    # Exceptions to the protection policy: columns this table reads and keeps in clear, each with a reason.
    block = table["encryption"]
    kept_in_clear = [
        c
        for c in others
        if block is False or (isinstance(block, dict) and c not in block.get("columns", others))
    ]
    clear = _subset(draw, kept_in_clear)
    if clear:
        table["clear_columns"] = {column: draw(REASON) for column in sorted(clear)}

    compression = draw(st.sampled_from(["off", "auto", "columns"]))
    compressed = _subset(draw, others, min_size=1) if compression == "columns" else []
    table["compression"] = {"columns": compressed} if compressed else compression == "auto"

    renamed = _subset(draw, others)
    if renamed:
        targets = draw(st.lists(POSTGRES_NAME, min_size=len(renamed), max_size=len(renamed), unique=True))
        table["column_names"] = dict(sorted(zip(renamed, targets, strict=True)))
    drift = draw(st.sampled_from(["evolve", "strict", "ignore"]))
    if drift != "evolve":
        table["schema_drift"] = drift
    batch_size = draw(st.one_of(st.just(100_000), st.integers(1, 1_000_000)))
    if batch_size != 100_000:
        table["batch_size"] = batch_size
    deletes: dict[str, Any] = {}
    delete_mode = draw(st.sampled_from(["off", "hard", "soft"]))
    if delete_mode != "off":
        deletes["mode"] = delete_mode
    max_ratio = draw(st.one_of(st.just(0.1), st.floats(0.001, 1.0)))
    if max_ratio != 0.1:  # noqa: PLR2004 - the default
        deletes["max_ratio"] = max_ratio
    if deletes:
        table["deletes"] = deletes
    for flag in ("history", "lineage"):
        if draw(st.booleans()):
            table[flag] = True
    staleness = draw(st.one_of(st.none(), st.integers(1, 527_040)))
    if staleness is not None:
        table["freshness_sla"] = duration_text(staleness)
    if draw(st.booleans()):
        table["reconcile"] = {"schedule": draw(st.sampled_from(["hourly", "daily", "30 2 * * 1-5"]))}
    if table["compression"] is False and draw(st.booleans()):
        table["parallel"] = {"slices": draw(st.integers(2, 64))}
    if draw(st.booleans()):
        table["enabled"] = False
    notes = draw(NOTES)
    if notes:
        table["notes"] = notes
    return table


@st.composite
def documents(draw: Any, min_tables: int = 0, max_tables: int = 4) -> dict[str, Any]:
    """A valid document: distinct names, distinct targets and distinct sources (two tables on one source must
    agree on what they encrypt: tests/api/test_protection_policy.py covers that)."""
    name = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
    names = draw(st.lists(name, min_size=min_tables, max_size=max_tables, unique=True))
    tables = [draw(table_dicts(name, target=("synced", name))) for name in sorted(names)]
    for table in tables:
        table["snowflake"]["table"] = f"SRC_{table['name'].upper()}"
    return {"tables": tables}
