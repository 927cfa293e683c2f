"""Runs recorded before run records kept plaintext sizes out: each encrypted column's entry in
`checks.protection` loses its plaintext and compressed sizes (which undo the padding for anyone who reads run
records), and the run's compression totals are summed again over the compressed columns kept in clear.

Entries of those runs do not say whether their column was encrypted; their sizes do. Only protected columns
have an entry, and a column that is compressed and not encrypted stores exactly its frames (stored bytes equal
compressed bytes), so an entry is encrypted when it stores anything and compressed nothing, or stores other
than its frames (envelopes around them).
"""

from typing import Any

from django.db import migrations

BATCH = 1000


def _encrypted(entry: dict[str, Any]) -> bool:
    if entry.get("encrypted"):
        return True
    stored, compressed = entry.get("bytes_stored") or 0, entry.get("bytes_compressed") or 0
    plain = entry.get("bytes_plain") or 0
    return (compressed == 0 and (stored > 0 or plain > 0)) or (compressed > 0 and stored != compressed)


def scrub_checks(checks: Any) -> tuple[dict[str, Any], int, int] | None:
    """The run's checks with encrypted columns' sizes removed, and its compression totals over the clear
    compressed columns; None when nothing changes."""
    columns = checks.get("protection") if isinstance(checks, dict) else None
    if not isinstance(columns, dict):
        return None
    scrubbed: dict[str, Any] = {}
    changed = False
    for name, entry in columns.items():
        if isinstance(entry, dict) and _encrypted(entry) and set(entry) - {"encrypted", "bytes_stored"}:
            scrubbed[name] = {"encrypted": True, "bytes_stored": entry.get("bytes_stored") or 0}
            changed = True
        else:
            scrubbed[name] = entry
    if not changed:
        return None
    clear = [
        entry
        for entry in scrubbed.values()
        if isinstance(entry, dict) and not entry.get("encrypted") and entry.get("bytes_compressed")
    ]
    before = sum(entry.get("bytes_plain") or 0 for entry in clear)
    after = sum(entry.get("bytes_compressed") or 0 for entry in clear)
    return {**checks, "protection": scrubbed}, before, after


def scrub(apps: Any, schema_editor: Any) -> None:
    SyncRun = apps.get_model("syncengine", "SyncRun")
    runs = SyncRun.objects.filter(checks__has_key="protection").only(
        "id", "checks", "bytes_before_compression", "bytes_after_compression"
    )
    pending = []
    for run in runs.iterator(chunk_size=BATCH):
        scrubbed = scrub_checks(run.checks)
        if scrubbed is None:
            continue
        run.checks, run.bytes_before_compression, run.bytes_after_compression = scrubbed
        pending.append(run)
        if len(pending) == BATCH:
            SyncRun.objects.bulk_update(pending, ["checks", "bytes_before_compression", "bytes_after_compression"])
            pending = []
    if pending:
        SyncRun.objects.bulk_update(pending, ["checks", "bytes_before_compression", "bytes_after_compression"])


class Migration(migrations.Migration):
    dependencies = [
        ("syncengine", "0006_sliced_runs"),
    ]

    operations = [migrations.RunPython(scrub, migrations.RunPython.noop)]
