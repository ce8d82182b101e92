"""deploy/grafana: the provisioned dashboards are valid Grafana JSON whose every query parses as PromQL and
names only series the code (or RabbitMQ's plugin) exposes, on the datasource the provisioning defines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opscheck import REPO, defined_metrics, load_yaml

GRAFANA = REPO / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
EXTERNAL_PREFIXES = ("rabbitmq_",)  # RabbitMQ's own rabbitmq_prometheus plugin
# What the issue asks the dashboards to show, each by a series that carries it.
REQUIRED = {
    "requests": "portal_http_requests_total",
    "latency": "portal_http_request_duration_seconds_bucket",
    "outbox lag": "portal_outbox_lag_seconds",
    "queue depth": "rabbitmq_detailed_queue_messages",
    "emails sent": "portal_notifier_emails_sent_total",
    "emails failed": "portal_notifier_emails_failed_total",
    "dead letters": "portal_events_dead_lettered_total",
}


def _datasource_uid() -> str:
    [source] = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    return str(source["uid"])


def _series(expr: str) -> set[str]:
    promql = pytest.importorskip("promql_parser", reason="dev dependency promql-parser")
    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql.VectorSelector) and node.name:
            names.add(node.name)
        return True

    promql.walk(promql.parse(expr), visit)
    return names


def _panels(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text())["panels"]


def test_there_are_dashboards_and_the_provider_serves_them() -> None:
    assert DASHBOARDS, "no dashboard JSON under deploy/grafana/dashboards"
    [provider] = load_yaml(GRAFANA / "provisioning" / "dashboards" / "portal.yml")["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards/portal"
    assert provider["allowUiUpdates"] is False, "the repository is the dashboards' source"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_a_dashboard_is_well_formed(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(set(ids)) == len(ids), "panel ids are unique"
    uid = _datasource_uid()
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["title"] and panel["type"] in {"timeseries", "stat", "gauge", "table", "bargauge"}
        assert panel["datasource"]["uid"] == uid, panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        columns, rows = range(grid["x"], grid["x"] + grid["w"]), range(grid["y"], grid["y"] + grid["h"])
        cells = {(x, y) for x in columns for y in rows}
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
        refs = [target["refId"] for target in panel["targets"]]
        assert panel["targets"] and len(set(refs)) == len(refs), panel["title"]
        assert all(target["datasource"]["uid"] == uid for target in panel["targets"])


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_parses_and_names_only_exposed_series(path: Path) -> None:
    exposed = defined_metrics()
    for panel in _panels(path):
        for target in panel["targets"]:
            names = _series(target["expr"])
            assert names, f"{panel['title']}: a query with no series"
            unknown = {n for n in names if n not in exposed and not n.startswith(EXTERNAL_PREFIXES)}
            assert not unknown, f"{panel['title']} queries series nothing exposes: {sorted(unknown)}"


def test_the_dashboards_show_what_operators_watch() -> None:
    queried = {name for path in DASHBOARDS for panel in _panels(path) for target in panel["targets"]
               for name in _series(target["expr"])}
    missing = {what: series for what, series in REQUIRED.items() if series not in queried}
    assert not missing, f"no panel shows {missing}"
