"""The shipped alert rules and Grafana dashboard are well formed and query only metrics that /metrics serves."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.utils import timezone

from syncconfig.models import TableConfig
from syncengine import reconciliations
from syncengine.choices import ReconciliationStatus, RunTrigger

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
PROMETHEUS = MONITORING / "prometheus.yml"
ALERTS = MONITORING / "alerts" / "pipeline_alerts.yml"
ALERT_TESTS = MONITORING / "alerts" / "pipeline_alerts_test.yml"
DASHBOARDS = MONITORING / "grafana" / "dashboards"
DASHBOARD = DASHBOARDS / "fdm.json"
PROVISIONING = MONITORING / "grafana" / "provisioning"

# Metrics that Prometheus itself records for every scrape target.
SCRAPE_METRICS = {"up"}
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
DURATION = re.compile(r"^(\d+[smhdwy])+$")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (function names, keywords and label names left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        token = match.group()
        if token in PROMQL_KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue
        names.add(token)
    return names


@pytest.fixture
def served_metrics(scenario, scrape) -> set[str]:
    """Every sample name /metrics serves for a history that exercises all of fdm's metrics (the scenario's,
    and a finished reconciliation)."""
    orders = TableConfig.objects.get(name="orders")
    reconciliation = reconciliations.reconciliation_create(table=orders, trigger=RunTrigger.API, deep=True)
    reconciliation.status, reconciliation.started_at = ReconciliationStatus.DIFFERENT, timezone.now()
    reconciliation.finished_at = timezone.now()
    reconciliation.save()
    names = {name for name, _ in scrape().samples}
    assert {name for name in names if name.startswith("fdm_")} >= {"fdm_runs_total", "fdm_collector_up"}
    return names


def load_alerts() -> list[dict]:
    document = yaml.safe_load(ALERTS.read_text())
    assert set(document) == {"groups"}
    return document["groups"]


def test_metric_names_leaves_out_functions_keywords_and_labels():
    expr = 'sum by (table) (increase(fdm_runs_total{status="failed"}[5m])) > 0 unless on(table) fdm_x == 1'
    assert metric_names(expr) == {"fdm_runs_total", "fdm_x"}
    assert metric_names("time() - max(last_seen) > 900 or vector(0)") == {"last_seen"}


def test_alert_rules_have_the_prometheus_rule_file_shape():
    groups = load_alerts()

    assert groups
    assert len({group["name"] for group in groups}) == len(groups)
    alerts = [rule for group in groups for rule in group["rules"]]
    assert len({rule["alert"] for rule in alerts}) == len(alerts)
    for group in groups:
        assert set(group) == {"name", "rules"}
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"Fdm[A-Z][A-Za-z0-9]+", rule["alert"])
            assert isinstance(rule["expr"], str) and rule["expr"].count("(") == rule["expr"].count(")")
            assert DURATION.match(rule["for"]), rule["for"]
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_the_alerts_cover_freshness_failures_queue_and_scraping():
    exprs = {rule["alert"]: rule["expr"] for group in load_alerts() for rule in group["rules"]}

    assert "fdm_table_max_staleness_seconds" in metric_names(exprs["FdmTableStale"])
    assert "86400" in exprs["FdmTableNoSuccessIn24h"]
    assert 'status="failed"' in exprs["FdmTableLastRunFailed"]
    assert "900" in exprs["FdmRunsStuckQueued"]
    assert metric_names(exprs["FdmMetricsDown"]) == {"up"}


def test_alert_rules_query_only_served_metrics(served_metrics):
    for group in load_alerts():
        for rule in group["rules"]:
            names = metric_names(rule["expr"])
            assert names, rule["alert"]
            assert names <= served_metrics | SCRAPE_METRICS, (rule["alert"], names - served_metrics)


def test_dashboard_picks_its_prometheus_through_a_variable_and_filters_by_table():
    """A data-source variable instead of import-time inputs: the same file imports by hand and provisions."""
    dashboard = json.loads(DASHBOARD.read_text())

    assert "__inputs" not in dashboard
    source, variable = dashboard["templating"]["list"]
    assert (source["name"], source["type"], source["query"]) == ("datasource", "datasource", "prometheus")
    references = datasource_references(dashboard)
    assert references
    for reference in references:
        if reference.get("type") == "prometheus":
            assert reference["uid"] == "${datasource}"
    assert (variable["name"], variable["type"]) == ("table", "query")
    assert variable["multi"] and variable["includeAll"]
    assert dashboard["id"] is None and dashboard["uid"]
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    assert_no_overlap([panel["gridPos"] for panel in panels])
    for panel in panels:
        if panel["type"] != "row":
            refs = [target["refId"] for target in panel["targets"]]
            assert refs and len(set(refs)) == len(refs), panel["title"]


def test_dashboard_queries_only_served_metrics(served_metrics):
    dashboard = json.loads(DASHBOARD.read_text())

    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(exprs) >= 10
    for expr in exprs:
        names = metric_names(expr)
        assert names and names <= served_metrics, (expr, names - served_metrics)
    variable = dashboard["templating"]["list"][1]
    [metric] = re.fullmatch(r"label_values\((\w+), table\)", variable["query"]["query"]).groups()
    assert metric in served_metrics
    # Every per-table metric follows the table variable.
    for expr in exprs:
        for selector in re.findall(r"(fdm_table_\w+)(\{[^}]*\})?", expr):
            assert 'table=~"$table"' in selector[1], expr


# `make test` installs Debian's prometheus package when promtool is missing.
@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Prometheus) is not installed")
def test_alert_rules_and_the_prometheus_config_pass_promtool_and_the_rules_unit_tests():
    for args in (
        ["check", "rules", ALERTS.name],
        ["test", "rules", ALERT_TESTS.name],
        ["check", "config", str(PROMETHEUS)],
    ):
        done = subprocess.run(
            ["promtool", *args], cwd=ALERTS.parent, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_scrapes_fdm_as_the_job_the_alerts_expect_and_loads_the_rules():
    config = yaml.safe_load(PROMETHEUS.read_text())

    assert [(MONITORING / path).resolve() for path in config["rule_files"]] == [ALERTS]
    [job] = config["scrape_configs"]
    assert (job["job_name"], job["metrics_path"]) == ("fdm", "/metrics")
    assert 'job="fdm"' in ALERTS.read_text()


def test_grafana_provisions_the_prometheus_source_and_the_dashboards_folder():
    [source] = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"]
    assert source["url"] == "http://prometheus:9090"
    [provider] = yaml.safe_load((PROVISIONING / "dashboards" / "fdm.yml").read_text())["providers"]
    assert provider["type"] == "file"
    # docker-compose.yml mounts monitoring/grafana/dashboards at the provider's path.
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert sorted(path.name for path in DASHBOARDS.iterdir()) == ["fdm.json"]


def datasource_references(node) -> list[dict]:
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict):
            found.append(node["datasource"])
        for value in node.values():
            found += datasource_references(value)
    elif isinstance(node, list):
        for value in node:
            found += datasource_references(value)
    return found


def assert_no_overlap(positions: list[dict]) -> None:
    cells: set[tuple[int, int]] = set()
    for pos in positions:
        assert pos["x"] + pos["w"] <= 24
        area = {
            (x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & area, pos
        cells |= area
