"""deploy/prometheus: the scrape config finds the services, every alert parses as PromQL and names only
series the code exposes, and every alert has its entry in the runbook (docs/operators.md)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from opscheck import REPO, SERVICES, defined_metrics, load_yaml

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
OPERATORS_DOC = REPO / "docs" / "operators.md"
# Alert inputs that other parts of the system provide: RabbitMQ's plugin and Prometheus itself.
EXTERNAL_PREFIXES = ("rabbitmq_",)
EXTERNAL = {"up"}
# Named in alerts before the code exposes them: each needs an owner (see the report of issue 8).
PENDING = {"portal_signin_throttled_total"}


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    groups = load_yaml(PROMETHEUS_DIR / "alerts.yml")["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _series(expr: str) -> set[str]:
    promql = pytest.importorskip("promql_parser", reason="dev dependency promql-parser")
    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql.VectorSelector) and node.name:
            names.add(node.name)
        return True

    promql.walk(promql.parse(expr), visit)
    return names


def test_scrape_config_targets_every_service_and_rabbitmq() -> None:
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS_DIR / rule_file).is_file(), rule_file
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for s in jobs["portal-services"]["static_configs"] for t in s["targets"]]
    assert sorted(targets) == sorted(f"{name}:{port}" for name, port in SERVICES.items())
    assert jobs["portal-services"].get("metrics_path", "/metrics") == "/metrics"
    assert jobs["rabbitmq"]["params"]["family"] == ["queue_coarse_metrics"]
    assert "kubernetes_sd_configs" in jobs["portal-kubernetes-pods"]
    # The pods it keeps are the ones deploy/k8s annotates.
    for service in SERVICES:
        text = (REPO / "deploy" / "k8s" / "base" / f"{service}.yaml").read_text()
        assert 'prometheus.io/scrape: "true"' in text and f'prometheus.io/port: "{SERVICES[service]}"' in text


def test_every_alert_is_complete(rules: list[dict[str, Any]]) -> None:
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names must be unique"
    for rule in rules:
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]


def test_every_expression_parses_and_names_real_series(rules: list[dict[str, Any]]) -> None:
    exposed = defined_metrics()
    assert "portal_outbox_lag_seconds" in exposed and "portal_http_requests_total" in exposed
    for rule in rules:
        for name in _series(rule["expr"]):
            known = name in exposed or name in EXTERNAL or name in PENDING or name.startswith(EXTERNAL_PREFIXES)
            assert known, f"{rule['alert']}: no code exposes {name}"


def test_the_parser_rejects_a_broken_expression() -> None:
    promql = pytest.importorskip("promql_parser", reason="dev dependency promql-parser")
    with pytest.raises(ValueError):
        promql.parse("sum(rate(portal_outbox_lag_seconds[5m])")


def test_the_four_operational_signals_are_alerted(rules: list[dict[str, Any]]) -> None:
    used = set().union(*(_series(rule["expr"]) for rule in rules))
    assert "portal_outbox_lag_seconds" in used, "outbox lag"
    assert "rabbitmq_detailed_queue_messages" in used, "DLQ depth"
    assert any(name.startswith("portal_notifier_") and "failed" in name for name in used), "failed emails"
    assert "portal_signin_throttled_total" in used, "throttled sign-ins"
    dlq = next(r for r in rules if "rabbitmq_detailed_queue_messages" in r["expr"])
    from portal_shared.broker import dead_letter_queue_name

    queue_regex = re.search(r'queue=~"([^"]+)"', dlq["expr"]).group(1).replace("\\\\", "\\")
    assert re.fullmatch(queue_regex, dead_letter_queue_name("notifier")), "the DLQ alert misses the real queue names"


def test_every_alert_has_a_runbook_entry(rules: list[dict[str, Any]]) -> None:
    doc = OPERATORS_DOC.read_text()
    headings = [h.strip().lower() for h in re.findall(r"^#{2,4}\s+(.+)$", doc, flags=re.MULTILINE)]
    for rule in rules:
        entry = re.search(r"Runbook: ([^.]+)\.", rule["annotations"]["description"])
        assert entry, f"{rule['alert']} names no runbook entry"
        assert any(entry.group(1).lower() in h for h in headings), f"docs/operators.md lacks '{entry.group(1)}'"
        assert rule["alert"] in doc, f"docs/operators.md does not mention {rule['alert']}"


def test_promtool_accepts_the_files(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool is not installed (Debian package prometheus); the PromQL parse above still ran")
    for args in (["check", "rules", str(PROMETHEUS_DIR / "alerts.yml")],
                 ["check", "config", "--syntax-only", str(PROMETHEUS_DIR / "prometheus.yml")]):
        result = subprocess.run([promtool, *args], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
