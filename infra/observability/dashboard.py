"""The Cloud Monitoring dashboard of one stack, built as Dashboards API JSON (mosaic layout)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp

from infra.observability import metrics as m

GRID_COLUMNS = 48
TILE_WIDTH = 24
TILE_HEIGHT = 16


@dataclass(frozen=True)
class DashboardArgs:
    project: str
    labels: Mapping[str, str]
    cluster_name: str
    namespace: str
    log_metrics_visible: Sequence[pulumi.Resource] = ()
    """What the charts of log-based metrics wait for (`LogPipeline.log_metrics_visible`)."""
    several_regions: bool = False
    """Add the charts by region (the `location` label of each region's cluster)."""


def legend(label: str) -> str:
    """A legend interpolation (`${...}`, Dashboards API `legendTemplate`) of a metric label."""
    return "${metric.labels." + label + "}"


def promql(query: str, legend_template: str = "") -> dict[str, Any]:
    """A chart line from a PromQL query (Managed Prometheus)."""
    data_set: dict[str, Any] = {
        "timeSeriesQuery": {"prometheusQuery": query},
        "plotType": "LINE",
        "targetAxis": "Y1",
    }
    if legend_template:
        data_set["legendTemplate"] = legend_template
    return data_set


def log_metric_rate(name: str, group_by: str, legend_template: str) -> dict[str, Any]:
    """A chart line from a log-based metric, per second, split by one of its labels."""
    return {
        "timeSeriesQuery": {
            "timeSeriesFilter": {
                "filter": f'metric.type="{m.log_metric_type(name)}" '
                f'resource.type="{m.LB_MONITORED_RESOURCE}"',
                "aggregation": {
                    "alignmentPeriod": "60s",
                    "perSeriesAligner": "ALIGN_RATE",
                    "crossSeriesReducer": "REDUCE_SUM",
                    "groupByFields": [f"metric.label.{group_by}"],
                },
            }
        },
        "plotType": "LINE",
        "targetAxis": "Y1",
        "legendTemplate": legend_template,
    }


def dashboard_json(args: DashboardArgs, title: str) -> dict[str, Any]:
    """Request rate, latency percentiles, batch sizes, flagged rate, replicas and errors, and the
    release tracks compared."""
    scope = {"cluster": args.cluster_name, "namespace": args.namespace}

    def rate(metric: m.PromMetric, by: str, extra: Mapping[str, str] | None = None) -> str:
        selector = m.promql_selector(metric.series(), {**scope, **(extra or {})})
        return f"sum by ({by}) (rate({selector}[5m]))"

    def quantile(q: float, metric: m.PromMetric, by: str = "", **extra: str) -> str:
        selector = m.promql_selector(metric.series("_bucket"), {**scope, **extra})
        grouping = ", ".join(["le", by] if by else ["le"])
        return f"histogram_quantile({q}, sum by ({grouping}) (rate({selector}[5m])))"

    def mean(metric: m.PromMetric) -> str:
        total = m.promql_selector(metric.series("_sum"), scope)
        count = m.promql_selector(metric.series("_count"), scope)
        return f"sum(rate({total}[5m])) / sum(rate({count}[5m]))"

    route = {"route": m.MODERATION_ROUTE}
    charts: list[tuple[str, str, list[dict[str, Any]]]] = [
        (
            "Requests per second by status code",
            "req/s",
            [promql(rate(m.REQUESTS, "status_code"), legend("status_code"))],
        ),
        (
            "Errors: 5xx share (service) and 5xx per second (load balancer)",
            "ratio | req/s",
            [
                promql(
                    f"{rate(m.REQUESTS, 'model', {'status_code': '~5..'})} / "
                    f"{rate(m.REQUESTS, 'model')}",
                    f"service 5xx share {legend('model')}",
                ),
                log_metric_rate(m.LB_5XX_LOG_METRIC, "status", f"load balancer {legend('status')}"),
            ],
        ),
        (
            "Request latency percentiles (/v1/moderations)",
            "s",
            [
                promql(quantile(q, m.HTTP_DURATION, **route), f"p{round(q * 100)}")
                for q in (0.5, 0.95, 0.99)
            ],
        ),
        (
            "Inference latency p99 by model",
            "s",
            [promql(quantile(0.99, m.INFERENCE_LATENCY, "model"), legend("model"))],
        ),
        (
            "Adaptive batch size",
            "texts per model call",
            [
                promql(quantile(0.5, m.BATCH_SIZE), "p50"),
                promql(quantile(0.95, m.BATCH_SIZE), "p95"),
                promql(mean(m.BATCH_SIZE), "mean"),
            ],
        ),
        (
            "Flagged inputs per second by category",
            "inputs/s",
            [promql(rate(m.FLAGGED, "category"), legend("category"))],
        ),
        (
            "Replicas",
            "pods",
            [
                promql(
                    f"max by ({by}) ({m.promql_selector(metric.series(), scope)})",
                    f"{word} {legend(by)}",
                )
                for metric, by, word in (
                    (m.HPA_CURRENT_REPLICAS, "horizontalpodautoscaler", "current"),
                    (m.HPA_DESIRED_REPLICAS, "horizontalpodautoscaler", "desired"),
                    (m.HPA_MAX_REPLICAS, "horizontalpodautoscaler", "max"),
                    (m.DEPLOYMENT_AVAILABLE_REPLICAS, "deployment", "available"),
                )
            ],
        ),
        (
            "Requests in flight (the autoscaler's signal)",
            "requests",
            [
                promql(
                    f"sum({m.promql_selector(m.REQUESTS_IN_FLIGHT.series(), scope)})", "in flight"
                )
            ],
        ),
        (
            "Cloud Armor denials per second by policy",
            "req/s",
            [log_metric_rate(m.ARMOR_DENIALS_LOG_METRIC, "policy", legend("policy"))],
        ),
        (
            "Input length p95 by model",
            "characters",
            [promql(quantile(0.95, m.INPUT_CHARS, "model"), legend("model"))],
        ),
        *_track_charts(scope),
        *(
            [
                (
                    "Requests per second by region",
                    "req/s",
                    [promql(rate(m.REQUESTS, "location"), legend("location"))],
                ),
                (
                    "Request latency p99 by region (/v1/moderations)",
                    "s",
                    [
                        promql(
                            quantile(0.99, m.HTTP_DURATION, "location", **route), legend("location")
                        )
                    ],
                ),
            ]
            if args.several_regions
            else []
        ),
    ]
    per_row = GRID_COLUMNS // TILE_WIDTH
    tiles = [
        {
            "xPos": (index % per_row) * TILE_WIDTH,
            "yPos": (index // per_row) * TILE_HEIGHT,
            "width": TILE_WIDTH,
            "height": TILE_HEIGHT,
            "widget": {
                "title": chart_title,
                "xyChart": {
                    "dataSets": data_sets,
                    "timeshiftDuration": "0s",
                    "yAxis": {"label": unit, "scale": "LINEAR"},
                },
            },
        }
        for index, (chart_title, unit, data_sets) in enumerate(charts)
    ]
    return {
        "displayName": title,
        "labels": dict(args.labels),
        "mosaicLayout": {"columns": GRID_COLUMNS, "tiles": tiles},
    }


def _track_charts(scope: Mapping[str, str]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """Release tracks side by side (stable, canary, shadow; each Bento version): what a rollout
    alert compares. Series carry `track` and `version` from the PodMonitoring."""
    track, version = m.TRACK, m.VERSION

    def by(metric: m.PromMetric, labels: str, suffix: str = "", **extra: str) -> str:
        selector = m.promql_selector(metric.series(suffix), {**scope, **extra})
        return f"sum by ({labels}) (rate({selector}[5m]))"

    texts = by(m.INPUT_CHARS, track, "_count")
    route = {"route": m.MODERATION_ROUTE}
    requests = by(m.REQUESTS, f"{track}, {version}")
    return [
        (
            "Release tracks: share of texts flagged per category",
            "share of texts",
            [
                promql(
                    f"{by(m.FLAGGED, f'{track}, category')} / on ({track}) group_left {texts}",
                    f"{legend(track)} {legend('category')}",
                )
            ],
        ),
        (
            "Release tracks: score p50 and p90 per category",
            "score",
            [
                promql(
                    f"histogram_quantile({q}, {by(m.SCORES, f'le, {track}, category', '_bucket')})",
                    f"p{round(q * 100)} {legend(track)} {legend('category')}",
                )
                for q in (0.5, 0.9)
            ],
        ),
        (
            "Release tracks: 5xx share",
            "ratio",
            [
                promql(
                    f"{by(m.REQUESTS, f'{track}, {version}', status_code='~5..')} / {requests}",
                    f"{legend(track)} {legend(version)}",
                )
            ],
        ),
        (
            "Release tracks: p99 latency (/v1/moderations)",
            "s",
            [
                promql(
                    "histogram_quantile(0.99, "
                    f"{by(m.HTTP_DURATION, f'le, {track}, {version}', '_bucket', **route)})",
                    f"{legend(track)} {legend(version)}",
                )
            ],
        ),
    ]


class ServiceDashboard(pulumi.ComponentResource):
    """One dashboard per stack, named after it, in Monitoring > Dashboards."""

    def __init__(
        self, name: str, args: DashboardArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("moderation:observability:ServiceDashboard", name, None, opts)
        title = f"Moderation API ({args.labels['environment']})"
        dashboard = gcp.monitoring.Dashboard(
            f"{name}-dashboard",
            project=args.project,
            dashboard_json=json.dumps(dashboard_json(args, title), sort_keys=True),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.log_metrics_visible)),
        )
        self.dashboard_id = dashboard.id
        self.register_outputs({"dashboard": dashboard.id})
