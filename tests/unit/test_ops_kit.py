"""The ops kit in deploy/ (Grafana dashboard, Prometheus alerting rules) names only metrics and
labels slawatch exports: renaming a metric or a label in internal/obs/metrics.py (or in the
worker's backlog collector) without updating the dashboard and the rules fails here.

The rules' behaviour itself is tested by promtool (`make rules`:
deploy/prometheus/slawatch-rules.test.yml)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from internal.obs import metrics
from internal.worker.ops import BacklogCollector
from support.env import ROOT
from support.promql import Selector, selectors

DASHBOARD = ROOT / "deploy" / "grafana" / "slawatch.json"
RULES = ROOT / "deploy" / "prometheus" / "slawatch-rules.yml"
# Labels Prometheus itself attaches to every scraped series.
TARGET_LABELS = frozenset({"instance", "job"})
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}


@dataclass(frozen=True)
class Exported:
    kind: str
    labels: frozenset[str]


def wrapper_series() -> dict[str, Exported]:
    """The series names of every metric defined in internal/obs/metrics.py."""
    series: dict[str, Exported] = {}
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        (family,) = value.describe()
        labels = frozenset(value._labelnames)
        for suffix in SUFFIXES[family.type]:
            extra = {"le"} if suffix == "_bucket" else set()
            series[family.name + suffix] = Exported(family.type, labels | extra)
    return series


@pytest.fixture
def exported(database_url: str, redis_url: str) -> dict[str, Exported]:
    """Every series slawatch exports: the metric definitions plus what the worker's backlog
    collector reads at scrape time (from a real database and Redis, so it yields its samples)."""
    series = wrapper_series()
    for family in BacklogCollector(database_url, redis_url).collect():
        for sample in family.samples:
            series[sample.name] = Exported(family.type, frozenset(sample.labels))
    assert "slawatch_outbox_oldest_pending_seconds" in series  # the collector did answer
    return series


@cache
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_queries() -> Iterator[tuple[str, str]]:
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["expr"]


def rule_queries() -> Iterator[tuple[str, str]]:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            yield f"rule {rule.get('alert') or rule.get('record')}", rule["expr"]


def unknown(queries: Iterator[tuple[str, str]], exported: dict[str, Exported]) -> list[str]:
    problems = []
    for where, expr in queries:
        for selector in selectors(expr):
            known = exported.get(selector.metric)
            if known is None:
                problems.append(f"{where}: {selector.metric} is not exported")
                continue
            for label in sorted(selector.labels - known.labels - TARGET_LABELS):
                problems.append(f"{where}: {selector.metric} has no label {label!r}")
    return problems


def test_every_dashboard_query_names_exported_metrics_and_labels(
    exported: dict[str, Exported],
) -> None:
    queries = list(dashboard_queries())
    assert len(queries) >= 20
    assert unknown(iter(queries), exported) == []


def test_every_alert_rule_names_exported_metrics_and_labels(
    exported: dict[str, Exported],
) -> None:
    assert unknown(rule_queries(), exported) == []


def readme_operations() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Operations", 1)[1].split("\n## ", 1)[0]


def readme_queries() -> Iterator[tuple[str, str]]:
    (block,) = re.findall(r"```promql\n(.*?)```", readme_operations(), re.S)
    for line in block.splitlines():
        query = line.split("#", 1)[0].strip()
        if query:
            yield "README", query


def test_the_readme_metrics_and_key_queries_are_exported(exported: dict[str, Exported]) -> None:
    """The README's Operations section (its metrics table and key queries) names what exists."""
    queries = list(readme_queries())
    assert len(queries) >= 15
    assert unknown(iter(queries), exported) == []
    table = set(re.findall(r"`(slawatch_\w+)`", readme_operations()))
    # A histogram is listed by its family name, exported as _bucket, _sum and _count series.
    missing = [n for n in sorted(table) if n not in exported and f"{n}_bucket" not in exported]
    assert table and missing == []


def test_a_renamed_metric_or_label_would_be_reported(exported: dict[str, Exported]) -> None:
    """The check above can fail: a query naming a metric or label that does not exist is caught."""
    queries = [
        ("q1", "sum(rate(slawatch_rpc_request_total[5m]))"),
        ("q2", 'sum(slawatch_bridge_upstream_feeds{status="down"})'),
        ("q3", "slawatch_alerts_total / ignoring(level) slawatch_alert_total"),
        ("q4", "histogram_quantile(0.9, rate(slawatch_rpc_duration_seconds[5m]))"),
    ]
    assert unknown(iter(queries), exported) == [
        "q1: slawatch_rpc_request_total is not exported",
        "q2: slawatch_bridge_upstream_feeds has no label 'status'",
        "q3: slawatch_alert_total is not exported",
        "q4: slawatch_rpc_duration_seconds is not exported",
    ]


def test_the_dashboard_covers_each_area_of_the_service() -> None:
    """API, ingest, evaluation, alerts, Slack delivery and backlog, streams, pool, reloads: each
    has a panel querying its metrics."""
    used = {s.metric for _, expr in dashboard_queries() for s in selectors(expr)}
    for metric in (
        "slawatch_rpc_requests_total",
        "slawatch_rpc_duration_seconds_bucket",
        "slawatch_events_ingested_total",
        "slawatch_scheduler_ticks_total",
        "slawatch_evaluation_duration_seconds_bucket",
        "slawatch_alerts_total",
        "slawatch_notifications_total",
        "slawatch_outbox_oldest_pending_seconds",
        "slawatch_queue_ready_messages",
        "slawatch_rpc_streams_open",
        "slawatch_bridge_websockets_open",
        "slawatch_bridge_upstream_feeds",
        "slawatch_config_reloads_total",
        "slawatch_tokens_reloads_total",
        "slawatch_db_pool_connections",
        "slawatch_db_pool_requests_waiting",
    ):
        assert metric in used, metric


def test_the_dashboard_is_importable() -> None:
    """What Grafana's import needs: a uid, unique panel ids, a grid position for each panel, and
    every query on the dashboard's Prometheus data source variable."""
    board = dashboard()
    assert board["uid"] == "slawatch" and board["title"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    (variable,) = board["templating"]["list"]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    for panel in board["panels"]:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${" + variable["name"] + "}"
            assert target["refId"]


def test_every_alert_rule_is_documented() -> None:
    """Each alert has a severity and the summary and description an on-call person reads."""
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} >= {
        "SlawatchNoSchedulerTicks",
        "SlawatchNotificationsStuck",
        "SlawatchPolicyRejected",
        "SlawatchTokensRejected",
        "SlawatchBridgeFeedsDown",
        "SlawatchRpcErrors",
    }
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (
            'sum by (le, method) (rate(m_bucket{method!~"grpc.*", code="OK"}[$__rate_interval]))',
            [Selector("m_bucket", frozenset({"method", "code"}))],
        ),
        ("count(count by (version) (v == 1)) > 1", [Selector("v", frozenset())]),
        (
            "a / ignoring(x) group_left(y) b unless c offset 10m",
            [Selector(n, frozenset()) for n in ("a", "b", "c")],
        ),
        ("histogram_quantile(0.99, h) / 1e3 > bool 2", [Selector("h", frozenset())]),
        ('absent(t{result="a,b"})', [Selector("t", frozenset({"result"}))]),
    ],
)
def test_the_scanner_finds_each_metric_and_matcher(expr: str, expected: list[Selector]) -> None:
    assert selectors(expr) == expected
