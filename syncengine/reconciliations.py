"""Writes for reconciliations: enqueue (admin, API, schedule), execute (a worker, or the `reconcile` command in
its own process), and the selectors that read them.

Like a run, "reconcile now" anywhere only records a queued reconciliation and hands its id to the task queue;
a worker claims it (`Reconciliation.start()`) and calls the core (`pipeline.reconcile`), then stores the result.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django_q.tasks import async_task

from fdm.notifications.choices import IncidentKind
from fdm.notifications.services import incident_open, incident_resolve
from syncconfig.choices import EncryptionMode
from syncconfig.models import TableConfig
from syncengine import connections, specs
from syncengine.choices import ReconciliationStatus
from syncengine.models import Reconciliation

logger = logging.getLogger("syncengine.reconciliations")

EXECUTE_TASK = "syncengine.tasks.execute_reconciliation"


def reconciliation_create(
    *, table: TableConfig, trigger: str, deep: bool, requested_by: User | AnonymousUser | None = None
) -> Reconciliation:
    """Record a queued reconciliation without queueing it (the caller executes it)."""
    user = requested_by if isinstance(requested_by, User) else None
    return Reconciliation.objects.create(
        table=table, table_name=table.name, trigger=trigger, deep=deep, requested_by=user
    )


def reconciliation_enqueue(
    *, table: TableConfig, trigger: str, deep: bool, requested_by: User | AnonymousUser | None = None
) -> Reconciliation:
    """Record a queued reconciliation and hand its id to the task queue once the transaction commits."""
    reconciliation = reconciliation_create(table=table, trigger=trigger, deep=deep, requested_by=requested_by)

    def push() -> None:
        try:
            async_task(
                EXECUTE_TASK,
                reconciliation.pk,
                task_name=f"fdm-reconcile-{reconciliation.pk}",
                group=f"fdm-reconcile:{table.name}"[:100],
            )
        except Exception as exc:
            logger.exception("could not enqueue reconciliation #%s", reconciliation.pk)
            reconciliation.refresh_from_db()
            reconciliation.finish(ReconciliationStatus.FAILED, error=f"could not enqueue: {exc}")

    transaction.on_commit(push)
    return reconciliation


def reconciliation_execute(*, reconciliation_id: int) -> Reconciliation:
    """Claim and run one reconciliation, and store its result.

    1. Claim it (a conditional update); one already claimed or finished is returned as it is.
    2. Build the table's spec, the connection settings and (for an encrypting table) the keyring.
    3. Run the deep check (segment hashes and bisection) or the light one (counts and sums) over the table.
    4. Store equal or different with the counts, the first differences and what it cost; any error: failed.
    """
    reconciliation = Reconciliation.objects.get(pk=reconciliation_id)
    if not reconciliation.start():
        return reconciliation
    table = reconciliation.table
    if table is None:
        reconciliation.finish(ReconciliationStatus.FAILED, error="the table's configuration was deleted")
        return reconciliation
    started = time.perf_counter()
    try:
        outcome = _check(reconciliation, table)
    except Exception as exc:
        logger.warning("reconciliation #%s of %s failed: %s", reconciliation.pk, table.name, exc)
        reconciliation.details = {"seconds": round(time.perf_counter() - started, 3)}
        reconciliation.finish(ReconciliationStatus.FAILED, error=str(exc) or type(exc).__name__)
        return reconciliation
    reconciliation.details = {**outcome, "seconds": round(time.perf_counter() - started, 3)}
    reconciliation.finish(
        ReconciliationStatus.EQUAL
        if reconciliation.differences_found == 0
        else ReconciliationStatus.DIFFERENT
    )
    _notify(reconciliation)
    return reconciliation


def _notify(reconciliation: Reconciliation) -> None:
    """Open the table's `reconcile_mismatch` incident when differences were found; a deep check that finds
    none resolves it (equal counts and sums cannot prove the rows equal). The message names keys and columns,
    never values."""
    name = reconciliation.table_name
    if reconciliation.status == ReconciliationStatus.EQUAL:
        if not reconciliation.deep:
            return
        incident_resolve(
            kind=IncidentKind.RECONCILE_MISMATCH,
            key=name,
            resolution=f"reconciliation #{reconciliation.pk} found no difference",
        )
        return
    keys = [
        "/".join(difference["key"]) if "key" in difference else difference.get("check", "")
        for difference in reconciliation.differences[:10]
    ]
    incident_open(
        kind=IncidentKind.RECONCILE_MISMATCH,
        key=name,
        table=name,
        title=f"{name}: {reconciliation.differences_found} differences from the source "
        f"({'deep' if reconciliation.deep else 'counts and sums'})",
        detail=f"reconciliation #{reconciliation.pk}; first: {', '.join(keys)}",
    )


def _check(reconciliation: Reconciliation, table: TableConfig) -> dict[str, Any]:
    # Imported here: web processes that only enqueue never load the Snowflake connector and pyarrow.
    from syncengine.pipeline.postgres import connect
    from syncengine.pipeline.reconcile.deep import DeepOptions, deep_reconcile
    from syncengine.pipeline.reconcile.light import reconcile_light

    spec = specs.table_spec(table)
    source = connections.snowflake_settings()
    keyring = connections.keyring(required=table.encryption_mode != EncryptionMode.OFF)
    source_conn = source.connect()
    try:
        with connect(connections.target_dsn(), application_name=f"fdm reconcile {table.name}") as target_conn:
            if reconciliation.deep:
                result = deep_reconcile(
                    spec,
                    source_conn=source_conn,
                    target_conn=target_conn,
                    keyring=keyring,
                    options=DeepOptions(limit=Reconciliation.DIFFERENCES_KEPT),
                    log=_log,
                )
                return _store_deep(reconciliation, result.to_json())
            light = reconcile_light(spec, source_conn=source_conn, target_conn=target_conn, log=_log)
    finally:
        source_conn.close()
    reconciliation.rows_compared = light["rows"]["source"]
    reconciliation.rows_target = light["rows"]["target"]
    reconciliation.differences_found = len(light["mismatches"])
    reconciliation.differences = [{"check": name} for name in light["mismatches"]]
    return light


def _store_deep(reconciliation: Reconciliation, result: dict[str, Any]) -> dict[str, Any]:
    reconciliation.rows_compared = result["rows_source"]
    reconciliation.rows_target = result["rows_target"]
    reconciliation.segments_checked = result["segments_checked"]
    reconciliation.differences_found = result["differences_found"]
    reconciliation.differences = result["differences"]
    keep = (
        "key",
        "queries_source",
        "queries_target",
        "bytes_source",
        "bytes_target",
        "compared_in_memory",
        "skipped_columns",
        "source_as_of",
    )
    return {name: result[name] for name in keep}


def _log(level: str, message: str, **fields: Any) -> None:
    logger.log(logging.getLevelName(level.upper()), "%s %s", message, fields)


def reconciliation_latest_by_table() -> dict[str, Reconciliation]:
    """Each table's latest finished reconciliation (for metrics and the status board)."""
    latest: dict[str, Reconciliation] = {}
    finished = Reconciliation.objects.filter(status__in=ReconciliationStatus.terminal()).order_by(
        "table_name", "-finished_at", "-id"
    )
    for reconciliation in finished.distinct("table_name"):
        latest[reconciliation.table_name] = reconciliation
    return latest
