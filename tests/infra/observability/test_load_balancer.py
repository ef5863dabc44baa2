"""The load balancer's logs and the metrics made from them, asked what they select.

Filters are evaluated (tests/infra/logging_filter.py) on log entries shaped as Cloud Logging
stores them (`http_load_balancer`, `k8s_container`) and on time series shaped as Cloud Monitoring
stores log-based metrics (`l7_lb_rule`), so that a filter on the wrong resource type, or one that
exports other workloads' logs, fails.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.observability.metrics import log_metric_type
from tests.infra.logging_filter import matches
from tests.infra.plans import Plan, stack_config

SINK = "gcp:logging/projectSink:ProjectSink"
LOG_METRIC = "gcp:logging/metric:Metric"


def _scope(plan: Plan) -> dict[str, Any]:
    """What the filters must select: the project, the one cluster name every region's cluster
    has (names are unique per location), the namespace, the Gateway and the regions."""
    config = stack_config(plan.stack)
    clusters = plan.each_region("gcp:container/cluster:Cluster")
    (cluster,) = {cluster["inputs"]["name"] for cluster in clusters.values()}
    namespace = config["moderation:workload"].get("namespace", "moderation")
    gateway = plan.one("kubernetes:gateway.networking.k8s.io/v1:Gateway")["inputs"]
    return {
        "project": config["gcp:project"],
        "cluster": cluster,
        "namespace": namespace,
        "gateway": gateway["metadata"]["name"],
        "gateway_class": gateway["spec"]["gatewayClassName"],
        "regions": list(clusters),
    }


def _lb_entry(url_map: str, status: int = 200, path: str = "/v1/moderations") -> dict[str, Any]:
    return {
        "resource": {
            "type": "http_load_balancer",
            "labels": {"url_map_name": url_map, "forwarding_rule_name": url_map + "-fr"},
        },
        "httpRequest": {"status": status, "requestUrl": f"https://api.example.com{path}"},
        "jsonPayload": {"statusDetails": "response_sent_by_backend"},
        "severity": "INFO",
    }


def _ours(scope: dict[str, Any]) -> str:
    """How the GKE Gateway controllers name this Gateway's URL map: `gkegw1-<hash>-` for the
    single-cluster classes, `gkemcg1-` for the multi-cluster ones."""
    prefix = "gkemcg1" if scope["gateway_class"].endswith("-mc") else "gkegw1-x1y2"
    return f"{prefix}-{scope['namespace']}-{scope['gateway']}-0a1b2c3d4e5f"


def _container_entry(scope: dict[str, Any], **overrides: str) -> dict[str, Any]:
    labels = {
        "project_id": scope["project"],
        "location": scope["regions"][0],
        "cluster_name": scope["cluster"],
        "namespace_name": scope["namespace"],
        **overrides,
    }
    return {
        "resource": {"type": "k8s_container", "labels": labels},
        "severity": "INFO",
        "jsonPayload": {"message": "request"},
    }


def test_sinks_export_this_service_and_its_load_balancer_and_nothing_else(plan: Plan) -> None:
    scope = _scope(plan)
    kept = [
        *(_container_entry(scope, location=region) for region in scope["regions"]),
        _lb_entry(_ours(scope)),
    ]
    other = [
        _container_entry(scope, namespace_name="payments"),
        _container_entry(scope, cluster_name="another-cluster"),
        _container_entry(scope, project_id="another-project"),
        _lb_entry("gkegw1-x1y2-shop-web-0a1b2c3d4e5f"),  # another Gateway's load balancer
        _lb_entry(f"k8s2-um-abc-{scope['namespace']}-ingress-xyz"),  # an Ingress in the namespace
    ]
    sinks = plan.of_type(SINK)
    assert sinks
    for sink in sinks:
        log_filter = sink["inputs"]["filter"]
        assert all(matches(log_filter, entry) for entry in kept), log_filter
        assert not any(matches(log_filter, entry) for entry in other), log_filter


def test_health_checks_are_excluded_but_their_failures_kept(plan: Plan) -> None:
    scope = _scope(plan)
    exclusions = [
        e["inputs"]["filter"] for e in plan.of_type("gcp:logging/projectExclusion:ProjectExclusion")
    ]

    def excluded(entry: dict[str, Any]) -> bool:
        return any(matches(f, entry) for f in exclusions)

    assert excluded(_lb_entry(_ours(scope), 200, "/readyz"))
    assert not excluded(_lb_entry(_ours(scope), 503, "/readyz"))
    assert not excluded(_lb_entry(_ours(scope), 200, "/v1/moderations"))


@pytest.mark.parametrize(
    ("metric_name", "counted", "not_counted"),
    [
        (
            "lb-5xx",
            {"status": 502},
            {"status": 200},
        ),
        (
            "armor-denials",
            {"jsonPayload": {"enforcedSecurityPolicy": {"outcome": "DENY", "name": "p"}}},
            {"jsonPayload": {"enforcedSecurityPolicy": {"outcome": "ACCEPT", "name": "p"}}},
        ),
    ],
)
def test_log_based_metrics_count_only_this_load_balancers_requests(
    plan: Plan, metric_name: str, counted: dict[str, Any], not_counted: dict[str, Any]
) -> None:
    scope = _scope(plan)
    metric = plan.one(LOG_METRIC, f"moderation-{metric_name}")["inputs"]

    def entry(url_map: str, fields: dict[str, Any]) -> dict[str, Any]:
        base = _lb_entry(url_map, fields.get("status", 200))
        if "jsonPayload" in fields:
            base["jsonPayload"] = fields["jsonPayload"]
        return base

    assert matches(metric["filter"], entry(_ours(scope), counted))
    assert not matches(metric["filter"], entry(_ours(scope), not_counted))
    assert not matches(metric["filter"], entry("gkegw1-x1y2-shop-web-0a1b2c3d", counted))


def _monitoring_filters(plan: Plan) -> list[str]:
    """Every Cloud Monitoring filter of the alert policies and the dashboard's charts."""
    filters = []

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "filter" and isinstance(item, str):
                    filters.append(item)
                else:
                    collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    for policy in plan.of_type("gcp:monitoring/alertPolicy:AlertPolicy"):
        collect(policy["inputs"]["conditions"])
    for dashboard in plan.of_type("gcp:monitoring/dashboard:Dashboard"):
        collect(json.loads(dashboard["inputs"]["dashboardJson"]))
    return filters


def test_alerts_and_charts_on_load_balancer_log_metrics_read_the_l7_lb_rule_series(
    plan: Plan,
) -> None:
    """Monitoring stores metrics made from `http_load_balancer` logs on `l7_lb_rule`."""
    log_metrics = [m["inputs"]["name"] for m in plan.of_type(LOG_METRIC)]
    checked = 0
    for metric_filter in _monitoring_filters(plan):
        for name in log_metrics:
            if log_metric_type(name) not in metric_filter:
                continue
            checked += 1
            series = {"metric": {"type": log_metric_type(name)}, "resource": {"type": "l7_lb_rule"}}
            assert matches(metric_filter, series), metric_filter
            series["resource"]["type"] = "http_load_balancer"
            assert not matches(metric_filter, series), metric_filter
    assert checked >= 2  # the Armor denial alert and the dashboard's load balancer charts


def test_the_filter_evaluator_is_not_vacuous() -> None:
    assert matches('a.b="x" AND (c>=5 OR NOT d=~"^y")', {"a": {"b": "x"}, "c": 7, "d": "y"})
    assert not matches('a.b="x" AND (c>=5 OR NOT d=~"^y")', {"a": {"b": "x"}, "c": 1, "d": "y"})
    assert matches("severity<WARNING", {"severity": "INFO"})
    assert not matches("severity<WARNING", {"severity": "ERROR"})
    with pytest.raises(ValueError):
        matches('a="x" AND', {})
