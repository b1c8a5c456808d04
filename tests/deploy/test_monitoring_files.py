"""The shipped Prometheus alert rules and Grafana dashboard use only metrics the app exports."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from service.config import get_settings
from service.observability import metrics

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "hotline-dashboard.json"
TOKEN = "monitoring-files-token-0123456789"
METRIC = re.compile(r"\bhotline_[a-z0-9_]+\b")
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "info": ("_info",),
    "gauge": ("",),
}


def alert_rules() -> list[dict[str, object]]:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def exported_names(text: str) -> set[str]:
    """Every series name a scrape can show, from its `# TYPE` lines."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name)  # the text format names counters with their `_total`
            names.update(f"{name}{suffix}" for suffix in SUFFIXES.get(kind, ("",)))
    return names


def test_alert_rules_are_well_formed() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert isinstance(rule["expr"], str) and rule["expr"].count("(") == rule["expr"].count(")")
        assert rule["labels"]["severity"] in ("warning", "critical")  # type: ignore[index]
        assert rule["annotations"]["summary"]  # type: ignore[index]
    # what the issue asks the rules to watch
    watched = " ".join(str(rule["expr"]) for rule in rules)
    for metric in ("deadlines", "outbox_oldest_age_seconds", "dead_letters", "ready"):
        assert f"hotline_{metric}" in watched


def test_every_metric_in_the_alerts_and_the_dashboard_is_exported(
    client: TestClient, login: Callable[[str], dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_METRICS_TOKEN", TOKEN)
    get_settings.cache_clear()
    client.post(
        "/api/v1/appeals",
        json={"channel": "web", "text": "小区门口路灯坏了好几天了"},
        headers=login("agent"),
    )
    scrape = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert scrape.status_code == 200
    exported = exported_names(scrape.text)
    assert {"hotline_appeals_total", "hotline_outbox_backlog", "hotline_model_info"} <= exported
    # task metrics have their families declared whether or not a task ran in this process
    assert metrics.TASK_DURATION._name + "_bucket" in exported
    used = {
        name
        for expr in [str(rule["expr"]) for rule in alert_rules()] + dashboard_exprs()
        for name in METRIC.findall(expr)
    }
    assert used, "the files name metrics"
    assert used <= exported, f"not exported: {sorted(used - exported)}"
