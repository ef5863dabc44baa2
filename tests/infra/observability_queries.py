"""Pull every metric query out of a plan: PromQL (alerts, dashboard) and Monitoring filters
(threshold conditions, SLOs, dashboard), so tests can check the names and labels they use."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import promql_parser

ALERT_POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
SLO = "gcp:monitoring/slo:Slo"
DASHBOARD = "gcp:monitoring/dashboard:Dashboard"
METRIC_TYPE = re.compile(r'metric\.type="([^"]+)"')


@dataclass(frozen=True)
class Selector:
    """One series selector of a PromQL query, and the labels the query filters or groups by."""

    name: str
    labels: frozenset[str]


def promql_queries(plan: dict[str, Any]) -> Iterator[str]:
    for policy in plan.of_type(ALERT_POLICY):
        for condition in policy["inputs"]["conditions"]:
            if "conditionPrometheusQueryLanguage" in condition:
                yield condition["conditionPrometheusQueryLanguage"]["query"]
    for dashboard in plan.of_type(DASHBOARD):
        for data_set in dashboard_data_sets(dashboard):
            if "prometheusQuery" in data_set["timeSeriesQuery"]:
                yield data_set["timeSeriesQuery"]["prometheusQuery"]


def monitoring_filters(plan: dict[str, Any]) -> Iterator[str]:
    for policy in plan.of_type(ALERT_POLICY):
        for condition in policy["inputs"]["conditions"]:
            if "conditionThreshold" in condition:
                yield condition["conditionThreshold"]["filter"]
    for slo in plan.of_type(SLO):
        sli = slo["inputs"]["requestBasedSli"]
        for part in sli.values():
            for key, value in part.items():
                if key.endswith("Filter"):
                    yield value
    for dashboard in plan.of_type(DASHBOARD):
        for data_set in dashboard_data_sets(dashboard):
            if "timeSeriesFilter" in data_set["timeSeriesQuery"]:
                yield data_set["timeSeriesQuery"]["timeSeriesFilter"]["filter"]


def metric_types(plan: dict[str, Any]) -> set[str]:
    """Cloud Monitoring metric types named by any filter of the plan."""
    return {name for text in monitoring_filters(plan) for name in METRIC_TYPE.findall(text)}


def dashboard_data_sets(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    document = json.loads(dashboard["inputs"]["dashboardJson"])
    for tile in document["mosaicLayout"]["tiles"]:
        yield from tile["widget"]["xyChart"]["dataSets"]


def selectors(query: str) -> list[Selector]:
    """Parse a PromQL query (raises on a syntax error) into its series selectors; each carries the
    labels it is matched on plus those an enclosing aggregation groups by (they must exist too)."""
    found: list[Selector] = []

    def walk(node: Any, grouping: frozenset[str]) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matched = {matcher.name for matcher in node.matchers.matchers}
            found.append(Selector(node.name, frozenset(matched | grouping)))
            return
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            grouping = grouping | (set(node.modifier.labels) - {"le"})
        for attribute in ("expr", "lhs", "rhs", "vector_selector", "param"):
            child = getattr(node, attribute, None)
            if child is not None:
                walk(child, grouping)
        for argument in getattr(node, "args", None) or []:
            walk(argument, grouping)

    walk(promql_parser.parse(query), frozenset())
    return found


def result_labels(query: str) -> set[str]:
    """Labels every series of an aggregated PromQL result carries (its outer `by (...)`)."""

    def labels(node: Any) -> set[str]:
        if isinstance(node, promql_parser.AggregateExpr):
            return set(node.modifier.labels) - {"le"} if node.modifier is not None else set()
        if isinstance(node, promql_parser.BinaryExpr):
            # group_left keeps the many (left) side's labels, group_right the right side's.
            card = node.modifier.card if node.modifier is not None else None
            if card == promql_parser.VectorMatchCardinality.ManyToOne:
                return labels(node.lhs)
            if card == promql_parser.VectorMatchCardinality.OneToMany:
                return labels(node.rhs)
            return labels(node.lhs) & labels(node.rhs)
        if isinstance(node, promql_parser.ParenExpr):
            return labels(node.expr)
        if isinstance(node, promql_parser.Call):
            return set().union(*(labels(argument) for argument in node.args))
        return set()

    return labels(promql_parser.parse(query))
