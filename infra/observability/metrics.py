"""Every metric name that an alert, SLO or dashboard uses, in one place.

Alerts, SLOs and the dashboard build their queries from these constants only, so a test can check
that each name is really exported: service metrics against the live service's `/metrics`, kube-state
metrics against the cluster's enabled Managed Prometheus components, log-based metrics against the
plan. Managed Prometheus stores a Prometheus metric in Cloud Monitoring as
`prometheus.googleapis.com/<name>/<kind>` on the `prometheus_target` resource, whose `cluster` and
`namespace` labels come from the scrape target, not from the exporter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

MetricKind = Literal["counter", "gauge", "histogram"]
MetricSource = Literal["service", "kube-state"]


@dataclass(frozen=True)
class PromMetric:
    """A Prometheus metric family as scraped by Managed Prometheus."""

    name: str
    """The name PromQL uses: counters include `_total`, histograms are the family base name."""
    kind: MetricKind
    labels: frozenset[str]
    """Labels the exporter attaches (queries may filter or group only by these + target labels)."""
    source: MetricSource

    @property
    def monitoring_type(self) -> str:
        """The metric type in Cloud Monitoring filters (SLOs, threshold conditions)."""
        return f"prometheus.googleapis.com/{self.name}/{self.kind}"

    def series(self, suffix: str = "") -> str:
        """The PromQL series name; histograms need `_bucket`, `_sum` or `_count`."""
        if self.kind == "histogram" and suffix not in ("_bucket", "_sum", "_count"):
            raise ValueError(f"histogram {self.name} is queried as _bucket, _sum or _count")
        return self.name + suffix


LB_MONITORED_RESOURCE = "l7_lb_rule"
"""Where Cloud Monitoring keeps metrics made from load-balancer logs: Logging calls the same logs'
resource `http_load_balancer`, Monitoring `l7_lb_rule`. Logging filters use the former, metric
filters (alerts, charts) the latter."""
LB_LOG_RESOURCE = "http_load_balancer"


def _labels(*names: str) -> frozenset[str]:
    return frozenset(names)


# --- exported by the moderation service (service/app.py; names fixed in the contract) ------------
REQUESTS = PromMetric(
    "moderation_requests_total", "counter", _labels("model", "status_code"), "service"
)
INFERENCE_LATENCY = PromMetric(
    "moderation_inference_latency_seconds", "histogram", _labels("model"), "service"
)
FLAGGED = PromMetric("moderation_flagged_total", "counter", _labels("model", "category"), "service")
INPUT_CHARS = PromMetric("moderation_input_chars", "histogram", _labels("model"), "service")
SCORES = PromMetric(
    "moderation_category_score", "histogram", _labels("model", "category"), "service"
)
"""Each text's score in each category its model scores: the score distribution per track."""
REQUESTS_IN_FLIGHT = PromMetric("moderation_requests_in_flight", "gauge", _labels(), "service")
"""POST /v1/moderations requests being answered per pod: the HPA's serving signal."""
BATCH_SIZE = PromMetric("moderation_batch_size", "histogram", _labels("model"), "service")
"""Texts per model call of the in-process batcher (service/batching.py)."""

HTTP_DURATION = PromMetric(
    "moderation_request_duration_seconds",
    "histogram",
    _labels("route", "status_code"),
    "service",
)
"""API request latency by route template (never the raw path) and status code."""
MODERATION_ROUTE = "/v1/moderations"
"""The `route` label value of the moderation endpoint."""


# --- GKE managed kube-state-metrics (cluster monitoring components HPA and DEPLOYMENT) -----------
HPA_CURRENT_REPLICAS = PromMetric(
    "kube_horizontalpodautoscaler_status_current_replicas",
    "gauge",
    _labels("horizontalpodautoscaler"),
    "kube-state",
)
HPA_MAX_REPLICAS = PromMetric(
    "kube_horizontalpodautoscaler_spec_max_replicas",
    "gauge",
    _labels("horizontalpodautoscaler"),
    "kube-state",
)
HPA_DESIRED_REPLICAS = PromMetric(
    "kube_horizontalpodautoscaler_status_desired_replicas",
    "gauge",
    _labels("horizontalpodautoscaler"),
    "kube-state",
)
DEPLOYMENT_AVAILABLE_REPLICAS = PromMetric(
    "kube_deployment_status_replicas_available", "gauge", _labels("deployment"), "kube-state"
)

PROM_METRICS: tuple[PromMetric, ...] = (
    REQUESTS,
    INFERENCE_LATENCY,
    FLAGGED,
    INPUT_CHARS,
    SCORES,
    REQUESTS_IN_FLIGHT,
    HTTP_DURATION,
    BATCH_SIZE,
    HPA_CURRENT_REPLICAS,
    HPA_MAX_REPLICAS,
    HPA_DESIRED_REPLICAS,
    DEPLOYMENT_AVAILABLE_REPLICAS,
)
SERVICE_METRICS = tuple(metric for metric in PROM_METRICS if metric.source == "service")
KUBE_STATE_COMPONENTS = ("HPA", "DEPLOYMENT")
"""GKE `monitoringConfig.enableComponents` entries that export the kube-state metrics above."""

TRACK = "track"
VERSION = "bento_version"
TARGET_LABELS = frozenset(
    {"cluster", "namespace", "location", "project_id", "job", "instance", TRACK, VERSION}
)
"""Labels Managed Prometheus adds from the scrape target: the `prometheus_target` resource labels,
and the release track (stable, canary, shadow) and Bento version that the PodMonitoring copies
from each pod's labels onto every series it scrapes (infra/workload.py)."""

# --- Cloud Monitoring built-in metrics -----------------------------------------------------------
CONTAINER_RESTARTS = "kubernetes.io/container/restart_count"
UPTIME_CHECK_PASSED = "monitoring.googleapis.com/uptime_check/check_passed"

# --- log-based metrics (declared by infra/observability/logs.py) ---------------------------------
ARMOR_DENIALS_LOG_METRIC = "moderation_armor_denied_requests"
LB_5XX_LOG_METRIC = "moderation_lb_5xx_responses"
LOG_METRICS = (ARMOR_DENIALS_LOG_METRIC, LB_5XX_LOG_METRIC)


def log_metric_type(name: str) -> str:
    """The Cloud Monitoring metric type of a user-defined log-based metric."""
    return f"logging.googleapis.com/user/{name}"


def promql_selector(series: str, matchers: Mapping[str, str]) -> str:
    """`series{k="v",...}`; a value starting with `~` becomes a regex matcher (`k=~"v"`)."""
    parts = [
        f'{key}=~"{value[1:]}"' if value.startswith("~") else f'{key}="{value}"'
        for key, value in matchers.items()
    ]
    return f"{series}{{{','.join(parts)}}}"
