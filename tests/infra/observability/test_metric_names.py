"""Every metric an alert, SLO or dashboard reads exists: service metrics on the live service's
/metrics (the session's `bentoml serve`, one real request sent), kube-state metrics through the
cluster's enabled monitoring components, log-based metrics in the plan itself."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from prometheus_client.parser import text_string_to_metric_families

from infra.observability import metrics as m
from infra.observability.alerts import MODERATION_ENDPOINT
from tests.fixtures.servers import RunningServer
from tests.infra.observability_queries import SLO, metric_types, promql_queries, selectors

CATALOGUE = {metric.name: metric for metric in m.PROM_METRICS}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
BUILT_IN_METRIC_TYPES = {m.CONTAINER_RESTARTS, m.UPTIME_CHECK_PASSED}


@dataclass
class ExportedFamily:
    kind: str
    labels: set[str] = field(default_factory=set)
    label_values: dict[str, set[str]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def exported(server: RunningServer) -> dict[str, ExportedFamily]:
    """Families on /metrics of the session's real service after one request to its default model,
    keyed by the name PromQL uses (counters with `_total`)."""
    with server.client() as client:
        response = client.post("/v1/moderations", json={"input": ["you are an idiot", "hello"]})
        assert response.status_code == 200, response.text
        text = client.get("/metrics").text
    families: dict[str, ExportedFamily] = {}
    for family in text_string_to_metric_families(text):
        name = family.name + "_total" if family.type == "counter" else family.name
        entry = families.setdefault(name, ExportedFamily(family.type))
        for sample in family.samples:
            for label, value in sample.labels.items():
                entry.labels.add(label)
                entry.label_values.setdefault(label, set()).add(value)
    return families


@pytest.mark.slow
@pytest.mark.parametrize("metric", m.SERVICE_METRICS, ids=lambda metric: metric.name)
def test_service_exports_each_catalogued_metric_with_its_kind_and_labels(
    exported: dict[str, ExportedFamily], metric: m.PromMetric
) -> None:
    assert metric.name in exported, f"{metric.name} missing from /metrics"
    family = exported[metric.name]
    assert family.kind == metric.kind
    assert metric.labels <= family.labels, f"{metric.name} lacks {metric.labels - family.labels}"


@pytest.mark.slow
def test_every_metric_the_plan_reads_is_exported_or_enabled(
    plan: dict, exported: dict[str, ExportedFamily]
) -> None:
    used = {_family_of(selector.name) for q in promql_queries(plan) for selector in selectors(q)}
    used |= {
        name.split("/")[1]
        for name in metric_types(plan)
        if name.startswith("prometheus.googleapis.com/")
    }
    used |= {  # the HPA's serving metric, `prometheus.googleapis.com|<name>|<kind>`
        metric["pods"]["metric"]["name"].split("|")[1]
        for hpa in plan.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
        for metric in hpa["inputs"]["spec"]["metrics"]
        if metric["type"] == "Pods"
    }
    assert used, "the plan reads no Prometheus metric at all"
    clusters = plan.each_region("gcp:container/cluster:Cluster")
    for name in sorted(used):
        metric = CATALOGUE[name]
        if metric.source == "service":
            assert name in exported, (
                f"{plan.stack}: {name} is read but the service never exports it"
            )
            continue
        for region, cluster in clusters.items():  # every region's cluster must export it
            enabled = set(cluster["inputs"]["monitoringConfig"]["enableComponents"])
            assert set(m.KUBE_STATE_COMPONENTS) <= enabled, f"{region}: {name}: kube-state off"


def test_promql_selectors_use_catalogued_metrics_and_their_labels(plan: dict) -> None:
    queries = list(promql_queries(plan))
    assert len(queries) >= 10
    for query in queries:
        for selector in selectors(query):
            metric = CATALOGUE.get(_family_of(selector.name))
            assert metric is not None, f"{selector.name} is not in infra/observability/metrics.py"
            if metric.kind == "histogram":
                assert selector.name.endswith(HISTOGRAM_SUFFIXES), query
            unknown = selector.labels - metric.labels - m.TARGET_LABELS
            assert not unknown, f"{query}: {metric.name} has no label {sorted(unknown)}"


def test_monitoring_filters_use_catalogued_or_declared_metrics(plan: dict) -> None:
    declared_log_metrics = {
        m.log_metric_type(metric["inputs"]["name"])
        for metric in plan.of_type("gcp:logging/metric:Metric")
    }
    known = (
        {metric.monitoring_type for metric in m.PROM_METRICS}
        | declared_log_metrics
        | BUILT_IN_METRIC_TYPES
    )
    used = metric_types(plan)
    assert used - known == set()
    assert declared_log_metrics <= used, "a log-based metric nobody reads"


@pytest.mark.slow
def test_latency_slo_threshold_is_a_bucket_bound_of_the_served_histogram(
    plan: dict, exported: dict[str, ExportedFamily]
) -> None:
    """A distribution cut between bucket bounds is silently rounded: keep it on a bound (the
    stack's latency SLO and, with several regions, each region's)."""
    latency_slos = [
        s for s in plan.of_type(SLO) if "distributionCut" in s["inputs"]["requestBasedSli"]
    ]
    assert len(latency_slos) == (len(plan.regions) + 1 if len(plan.regions) > 1 else 1)
    bounds = {float(le) for le in exported[m.HTTP_DURATION.name].label_values["le"]}
    for latency in latency_slos:
        threshold = latency["inputs"]["requestBasedSli"]["distributionCut"]["range"]["max"]
        assert float(threshold) in bounds, latency["name"]


@pytest.mark.slow
def test_queries_filter_on_the_route_the_service_serves(
    exported: dict[str, ExportedFamily],
) -> None:
    assert MODERATION_ENDPOINT in exported[m.HTTP_DURATION.name].label_values["route"]


def _family_of(series: str) -> str:
    """`x_bucket` -> `x` for catalogued histograms; other names unchanged."""
    for suffix in HISTOGRAM_SUFFIXES:
        base = series.removesuffix(suffix)
        if base != series and CATALOGUE.get(base) and CATALOGUE[base].kind == "histogram":
            return base
    return series


@pytest.mark.slow
def test_no_exported_label_collides_with_the_pod_target_labels(
    exported: dict[str, ExportedFamily],
) -> None:
    """The PodMonitoring adds `track` and the Bento version to every series; an exporter label of
    the same name would be renamed `exported_<name>` and the per-track queries would miss it."""
    for name, family in exported.items():
        assert not family.labels & {m.TRACK, m.VERSION}, name
