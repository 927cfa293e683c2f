"""The fault cases' results as the markdown table in docs/reliability.md ("Kills and lost connections").

    python -m tests.faults.report [RESULTS]    # default: $FDM_FAULTS_RESULTS, else <tmp>/fdm-faults-results.jsonl

Each line of RESULTS is one case (`harness.record`); a case run twice keeps its last line. Needs no Django.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path

COLUMNS = (
    "case",
    "struck at",
    "lost / duplicated",
    "reader saw (slowest read)",
    "final status: message",
    "dead sessions gone",
    "left behind",
    "healthy after",
)


# Where each case's run stood, in the order a run passes them; other cases follow.
POINTS = ("extract", "copy", "publish-wait", "publish-insert", "after-commit")
_VARYING = (
    (re.compile(r"\(([\w.-]+):\d+\)"), "(host:pid)"),
    (re.compile(r" (at or after |at )?\d{4}-\d\d-\d\d[ T][\d:.+]+( UTC)?"), ""),
    (re.compile(r"port=\d+"), "port=…"),
)


def _message(result: dict) -> str:
    text = result["message"].split(": ", 1)[-1]  # the table's (random) name goes
    for pattern, replacement in _VARYING:
        text = pattern.sub(replacement, text)
    return text if len(text) <= 140 else text[:137] + "..."


def _order(result: dict) -> tuple:
    point = POINTS.index(result["strikes"]) if result["strikes"] in POINTS else len(POINTS)
    return (not result["case"].startswith("kill-"), result["executor"], point, result["mode"], result["case"])


def row(result: dict) -> list[str]:
    return [
        f"{result['fault']}, {result['mode']}",
        result["struck_at"].replace("|", "/"),
        f"{result['rows_lost']} / {result['rows_duplicated']}",
        f"{result['reader_saw']} ({result['reader_slowest_seconds']:.2f} s)",
        f"**{result['status']}**: {_message(result)}".replace("|", "/"),
        f"{result['dead_session_seconds']:.1f} s" if result["dead_session_seconds"] is not None else "",
        ", ".join(result["left_behind"]) or "nothing",
        f"{result['seconds_to_healthy']:.1f} s" + (f" ({result['notes']})" if result["notes"] else ""),
    ]


def table(results: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row(result)) + " |" for result in results]
    return "\n".join(lines)


def load(path: Path) -> list[dict]:
    latest: dict[str, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            result = json.loads(line)
            latest[result["case"]] = result
    return sorted(latest.values(), key=_order)


def main(argv: list[str]) -> int:
    default = os.environ.get("FDM_FAULTS_RESULTS") or Path(tempfile.gettempdir()) / "fdm-faults-results.jsonl"
    path = Path(argv[1] if len(argv) > 1 else default)
    if not path.is_file():
        print(f"no results at {path}: run `pytest -m faults` (or `make faults`) first", file=sys.stderr)
        return 1
    print(table(load(path)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
