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
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def _serving_metrics(plan: dict, hpas: list[dict] | None = None) -> list[str]:
    """Names of the Managed Prometheus metrics any HPA (of `hpas`, else of the plan) scales on."""
    return [
        metric["pods"]["metric"]["name"]
        for hpa in (plan.of_type(HPA) if hpas is None else hpas)
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
    """In each region's cluster, for that cluster's HPAs."""
    deployments = plan.in_each_region(DEPLOYMENT)
    api_services = {region: [] for region in plan.regions}
    for api_service in plan.of_type(APISERVICE):
        api_services[plan.region_of(api_service)].append(api_service)
    for region, hpas in plan.in_each_region(HPA).items():
        wanted = bool(_serving_metrics(plan, hpas))
        adapters = [d for d in deployments[region] if d["inputs"]["metadata"]["name"] == NAME]
        assert len(adapters) == int(wanted), region
        assert len(api_services[region]) == 3 * int(wanted), region


def test_adapter_serves_the_custom_and_external_metrics_apis(plans: dict) -> None:
    plan = plans["prod"]
    assert _serving_metrics(plan), "prod is expected to scale on requests in flight"
    for region, api_services in plan.in_each_region(APISERVICE).items():
        services = {a["inputs"]["metadata"]["name"]: a["inputs"]["spec"] for a in api_services}
        assert len(services) == len(api_services), region
        assert set(services) == {
            "v1beta1.custom.metrics.k8s.io",
            "v1beta2.custom.metrics.k8s.io",
            "v1beta1.external.metrics.k8s.io",
        }, region
        for spec in services.values():
            assert spec["service"] == {"name": NAME, "namespace": NAMESPACE}, region


def test_adapter_reads_monitoring_through_workload_identity(plans: dict) -> None:
    """Each region's adapter as that region's account, which alone may read Monitoring."""
    plan = plans["prod"]
    project = stack_config("prod")["gcp:project"]
    accounts = plan.kubernetes_object_in_each_region("ServiceAccount", NAME, NAMESPACE)
    gcp_accounts = plan.each_region("gcp:serviceaccount/account:Account", "metrics-adapter-gsa")
    bindings = plan.each_region(
        "gcp:serviceaccount/iAMMember:IAMMember", "metrics-adapter-workload-identity"
    )
    viewers = [
        g["inputs"]["member"]
        for g in plan.of_type("gcp:projects/iAMMember:IAMMember")
        if g["inputs"]["role"] == "roles/monitoring.viewer"
    ]
    assert accounts[plan.regions[0]]["metadata"]["annotations"][
        "iam.gke.io/gcp-service-account"
    ].startswith("custom-metrics-adapter@")
    emails = set()
    for region, account in accounts.items():
        email = account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        account_id = gcp_accounts[region]["inputs"]["accountId"]
        assert email == f"{account_id}@{project}.iam.gserviceaccount.com", region
        assert viewers.count(f"serviceAccount:{email}") == 1, region
        binding = bindings[region]["inputs"]
        assert binding["role"] == "roles/iam.workloadIdentityUser", region
        assert binding["member"] == f"serviceAccount:{project}.svc.id.goog[{NAMESPACE}/{NAME}]"
        assert binding["serviceAccountId"].endswith(f"/{email}"), region
        emails.add(email)
    assert len(viewers) == len(emails), "no other account reads Monitoring"


def test_binary_authorization_admits_the_adapter_image_only_where_it_runs(plan: dict) -> None:
    policy = plan.one("gcp:binaryauthorization/policy:Policy")["inputs"]
    patterns = [p["namePattern"] for p in policy.get("admissionWhitelistPatterns") or []]
    admitted = any(fnmatch.fnmatch(ADAPTER_IMAGE, pattern) for pattern in patterns)
    assert admitted is bool(_serving_metrics(plan))
