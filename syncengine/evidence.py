"""A run's evidence pack: one JSON document that tells an auditor what the run did and with what.

It holds the configuration the run used (and the hash of the table spec built from it), the Snowflake queries
it ran (ids, SQL and binds), the source and target columns as the run saw them (each list with its hash),
counts and seconds per stage, the watermarks, the checks, the reconciliation result, the ids of the keys it
encrypted with (never a key) and fdm's version. Its last key, `sha256`, is the SHA-256 of the rest of the
document in canonical form (`canonical_json`), so that a copy handed on can be checked for changes:

    python -c 'import hashlib,json,sys; d=json.load(sys.stdin); s=d.pop("sha256");
    print(s == hashlib.sha256(json.dumps(d, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False).encode()).hexdigest())' < evidence.json

Built from the run record alone (`SyncRun.evidence` keeps what the other fields do not), so it can be
produced at any time after the run, also for a failed one (with what that run got to).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from syncengine.backups import fdm_version
from syncengine.models import SyncRun

FORMAT = "fdm-run-evidence/1"


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text: the form every digest in the pack is taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, cls=DjangoJSONEncoder)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def run_evidence(run: SyncRun) -> dict[str, Any]:
    """The evidence pack of `run` (see the module's docstring); its `sha256` covers every other key."""
    facts = run.evidence or {}
    configuration = facts.get("configuration")
    source_columns = facts.get("source_columns", [])
    target_columns = facts.get("target_columns", [])
    document: dict[str, Any] = {
        "format": FORMAT,
        "generated_at": timezone.now(),
        "fdm_version": fdm_version(),
        "run": _run_facts(run),
        "configuration": {
            "table": configuration,
            "table_sha256": digest(configuration) if configuration is not None else None,
            "spec_sha256": run.config_hash or None,
        },
        "source": {
            "table": _source_name(configuration),
            "columns": source_columns,
            "columns_sha256": digest(source_columns) if source_columns else None,
            "queries": facts.get("queries", []),
        },
        "target": {
            "table": _target_name(configuration),
            "columns": target_columns,
            "columns_sha256": digest(target_columns) if target_columns else None,
        },
        "counts": {
            "extracted": run.rows_extracted,
            "loaded": run.rows_loaded,
            "inserted": run.rows_inserted,
            "updated": run.rows_updated,
            "deleted": run.rows_deleted,
            "bytes_extracted": run.bytes_extracted,
            "bytes_loaded": run.bytes_loaded,
        },
        "seconds": {
            "extract": run.extract_seconds,
            "transform": run.transform_seconds,
            "load": run.load_seconds,
            "publish": run.publish_seconds,
        },
        "watermark": {"before": run.watermark_before, "after": run.watermark_after},
        "drift": run.drift,
        "checks": run.checks,
        "reconciliation": run.checks.get("reconciliation"),
        "key_ids": facts.get("key_ids", []),
    }
    document = json.loads(canonical_json(document))  # the types a reader of the JSON sees
    document["sha256"] = digest(document)
    return document


def _run_facts(run: SyncRun) -> dict[str, Any]:
    return {
        "id": run.pk,
        "table": run.table_name,
        "trigger": run.trigger,
        "status": run.status,
        "mode": run.mode or None,
        "full_refresh": run.full_refresh,
        "attempt": run.attempt,
        "retry_of": run.retry_of_id,
        "requested_by": run.requested_by.get_username() if run.requested_by else None,
        "executor": run.executor or None,
        "queued_at": run.queued_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "error_kind": run.error_kind or None,
        "error_message": run.error_message or None,
        "skip_reason": run.skip_reason or None,
    }


def _source_name(configuration: dict[str, Any] | None) -> str | None:
    if not configuration:
        return None
    source = configuration["snowflake"]
    return f"{source['database']}.{source['schema']}.{source['table']}"


def _target_name(configuration: dict[str, Any] | None) -> str | None:
    if not configuration:
        return None
    target = configuration["postgres"]
    return f"{target['schema']}.{target['table']}"


def evidence_filename(run: SyncRun) -> str:
    return f"fdm-run-{run.pk}-{run.table_name}-evidence.json"
