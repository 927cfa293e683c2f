"""docs/troubleshooting.md quotes what fdm says: every message in one of its headings still exists in the code
(each part between the `…` that stand for what varies), and every alert it explains is a rule fdm ships."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "troubleshooting.md"
CODE_FOLDERS = ("fdm", "syncconfig", "syncengine", "templates", "monitoring")
MIN_FRAGMENT = 6  # shorter pieces between placeholders ("; ", " of ") prove nothing


def quoted_headings() -> list[str]:
    return re.findall(r"^### `(.+)`$", GUIDE.read_text(encoding="utf-8"), flags=re.MULTILINE)


def code_text() -> str:
    texts = [
        path.read_text(encoding="utf-8")
        for folder in CODE_FOLDERS
        for path in (ROOT / folder).rglob("*")
        if path.suffix in {".py", ".html", ".yml", ".yaml"} and "migrations" not in path.parts
    ]
    # Messages are written across lines as adjacent string literals: join them as Python would.
    joined = re.sub(r'"\s*\n\s*f?"', "", "\n".join(texts))
    return re.sub(r"\{[^{}]*\}", "…", joined)


def test_the_guide_explains_at_least_twenty_messages_and_alerts():
    assert len(quoted_headings()) >= 20


def test_every_quoted_message_is_still_in_the_code():
    code = code_text()
    missing = [
        heading
        for heading in quoted_headings()
        if not heading.startswith("Fdm")
        for fragment in heading.split("…")
        if len(fragment.strip()) >= MIN_FRAGMENT and fragment.strip() not in code
    ]
    assert missing == [], f"docs/troubleshooting.md quotes messages fdm no longer prints: {missing}"


def test_every_alert_it_explains_is_a_shipped_rule():
    rules = yaml.safe_load((ROOT / "monitoring" / "alerts" / "pipeline_alerts.yml").read_text())
    shipped = {rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
    explained = {heading for heading in quoted_headings() if heading.startswith("Fdm")}
    assert explained and explained <= shipped, explained - shipped
