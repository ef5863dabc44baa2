"""The autoscaler's serving metric, wired end to end: the service exports it, Managed Prometheus
scrapes it, the custom metrics adapter serves it to the HPA, Binary Authorization admits the
adapter, and the adapter may read Cloud Monitoring."""

from __future__ import annotations

import fnmatch

from infra.observability import metrics as m
from infra.observability.metrics_adapter import ADAPTER_IMAGE, NAME, NAMESPACE
from tests.infra.plans import stack_config

APISERVICE = "kubernetes:apiregistration.k8s.io/v1:APIService"
PROMETHEUS_PREFIX = "prometheus.googleapis.com|"


def _serving_metrics(plan: dict) -> list[str]:
    """Names of the Managed Prometheus metrics any HPA scales on."""
    return [
        metric["pods"]["metric"]["name"]
        for hpa in plan.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
        for metric in hpa["inputs"]["spec"]["metrics"]
        if metric["type"] == "Pods"
    ]


def test_hpa_serving_metric_is_a_catalogued_service_metric(plan: dict) -> None:
    for name in _serving_metrics(plan):
        prefix, metric_name, kind = name.split("|")
        assert f"{prefix}|" == PROMETHEUS_PREFIX
        (metric,) = [x for x in m.SERVICE_METRICS if x.name == metric_name]
        assert metric.kind == kind


def test_adapter_is_deployed_exactly_when_an_hpa_scales_on_a_serving_metric(plan: dict) -> None:
    wanted = bool(_serving_metrics(plan))
    deployments = [
        d
        for d in plan.of_type("kubernetes:apps/v1:Deployment")
        if d["inputs"]["metadata"]["name"] == NAME
    ]
    assert len(deployments) == int(wanted)
    assert len(plan.of_type(APISERVICE)) == 3 * int(wanted)


def test_adapter_serves_the_custom_and_external_metrics_apis(plans: dict) -> None:
    plan = plans["prod"]
    assert _serving_metrics(plan), "prod is expected to scale on requests in flight"
    services = {
        a["inputs"]["metadata"]["name"]: a["inputs"]["spec"] for a in plan.of_type(APISERVICE)
    }
    assert set(services) == {
        "v1beta1.custom.metrics.k8s.io",
        "v1beta2.custom.metrics.k8s.io",
        "v1beta1.external.metrics.k8s.io",
    }
    for spec in services.values():
        assert spec["service"] == {"name": NAME, "namespace": NAMESPACE}


def test_adapter_reads_monitoring_through_workload_identity(plans: dict) -> None:
    plan = plans["prod"]
    (account,) = [
        a["inputs"]
        for a in plan.of_type("kubernetes:core/v1:ServiceAccount")
        if a["inputs"]["metadata"]["name"] == NAME
    ]
    email = account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
    assert email.startswith("custom-metrics-adapter@")
    (viewer,) = [
        g["inputs"]
        for g in plan.of_type("gcp:projects/iAMMember:IAMMember")
        if g["inputs"]["role"] == "roles/monitoring.viewer"
    ]
    assert viewer["member"] == f"serviceAccount:{email}"
    project = stack_config("prod")["gcp:project"]
    bindings = [
        g["inputs"]["member"]
        for g in plan.of_type("gcp:serviceaccount/iAMMember:IAMMember")
        if g["inputs"]["role"] == "roles/iam.workloadIdentityUser"
    ]
    assert f"serviceAccount:{project}.svc.id.goog[{NAMESPACE}/{NAME}]" in bindings


def test_binary_authorization_admits_the_adapter_image_only_where_it_runs(plan: dict) -> None:
    policy = plan.one("gcp:binaryauthorization/policy:Policy")["inputs"]
    patterns = [p["namePattern"] for p in policy.get("admissionWhitelistPatterns") or []]
    admitted = any(fnmatch.fnmatch(ADAPTER_IMAGE, pattern) for pattern in patterns)
    assert admitted is bool(_serving_metrics(plan))
