"""APIs: every Google API the stack calls is enabled by the program (`gcp.projects.Service`,
left on when the stack is destroyed: other workloads in the project may use it) and everything
that calls it waits for that, so a fresh project needs only the prerequisites docs/deploy.md
lists. Which API a resource calls is the API of its provider module, and each API's service name
is read from Google's discovery document for it (`rootUrl`), not written here; the cluster's
features that call further APIs are listed with the page that says so."""

from __future__ import annotations

import copy
from urllib.parse import urlparse

import pytest

from tests.infra.google_discovery import document
from tests.infra.plans import Plan

SERVICE = "gcp:projects/service:Service"
CLUSTER = "gcp:container/cluster:Cluster"
# What `pulumi up` needs before the program can enable anything (docs/deploy.md, step 4): the
# Service Usage API enables the others, and the provider reads the project through Resource
# Manager (also the API of project-level IAM grants).
PREREQUISITES = {"serviceusage.googleapis.com", "cloudresourcemanager.googleapis.com"}

# pulumi-gcp module (`gcp:<module>/...`) -> discovery document of the API its resources call.
MODULE_APIS = {
    "artifactregistry": "artifactregistry.v1",
    "bigquery": "bigquery.v2",
    "billing": "billingbudgets.v1",
    "binaryauthorization": "binaryauthorization.v1",
    "certificatemanager": "certificatemanager.v1",
    "compute": "compute.v1",
    "container": "container.v1",
    "dns": "dns.v1",
    "gkehub": "gkehub.v1",
    "kms": "cloudkms.v1",
    "logging": "logging.v2",
    "monitoring": "monitoring.v3",
    "projects": "cloudresourcemanager.v1",
    "pubsub": "pubsub.v1",
    "secretmanager": "secretmanager.v1",
    "serviceaccount": "iam.v1",
    "storage": "storage.v1",
}
# Other types -> the API they call.
TYPE_APIS = {
    # The push goes to Artifact Registry (docker-build provider, `registries`).
    "docker-build:index:Image": "artifactregistry.v1",
}
# Cluster input (dotted path) set to a truthy value -> the API the feature calls. Where Google
# publishes no discovery document for the API, its service name is given with the page.
CLUSTER_FEATURES: dict[str, str] = {
    # Workload Identity Federation for GKE: "Enable the IAM Service Account Credentials API".
    "workloadIdentityConfig.workloadPool": "iamcredentials.v1",
    # Secret Manager add-on: pods read secrets through the Secret Manager API.
    "secretManagerConfig.enabled": "secretmanager.v1",
    # Managed Prometheus writes to Cloud Monitoring.
    "monitoringConfig.managedPrometheus.enabled": "monitoring.v3",
    # Image streaming, GKE "Use Image streaming to pull container images": "Enable the Container
    # File System API" (containerfilesystem.googleapis.com); no discovery document is published.
    "nodePoolDefaults.nodeConfigDefaults.gcfsConfig.enabled": "containerfilesystem.googleapis.com",
}
# Registry input -> API. Artifact Registry's automatic vulnerability scanning: "Enable the
# Container Scanning API" (containerscanning.googleapis.com; Artifact Analysis docs).
REGISTRY_FEATURES = {
    "vulnerabilityScanningConfig.enablementConfig": "containerscanning.googleapis.com",
}


def service_name(api: str) -> str:
    """`<name>.googleapis.com` of a discovery document (its `rootUrl`), or the name as given."""
    if api.endswith(".googleapis.com"):
        return api
    return urlparse(document(api)["rootUrl"]).hostname


def _value(inputs: dict, path: str) -> object:
    for key in path.split("."):
        inputs = inputs.get(key, {}) if isinstance(inputs, dict) else {}
    return inputs


def required_apis(plan: Plan) -> dict[str, set[str]]:
    """Resource address -> the service names of the APIs it calls."""
    required: dict[str, set[str]] = {}
    for resource in plan["resources"]:
        resource_type, inputs = resource["type"], resource["inputs"]
        module = resource_type.split(":")[1].split("/")[0] if ":" in resource_type else ""
        apis = set()
        if resource_type.startswith("gcp:") and resource_type != SERVICE:
            apis.add(MODULE_APIS[module])
        if resource_type in TYPE_APIS:
            apis.add(TYPE_APIS[resource_type])
        if resource_type == CLUSTER:
            apis |= {api for path, api in CLUSTER_FEATURES.items() if _value(inputs, path)}
        if resource_type == "gcp:artifactregistry/repository:Repository":
            apis |= {api for path, api in REGISTRY_FEATURES.items() if _value(inputs, path)}
        if apis:
            required[Plan.address(resource)] = {service_name(api) for api in apis}
    return required


def missing_apis(plan: Plan) -> dict[str, set[str]]:
    """Resource -> APIs it calls that the program does not enable, or enables without making it
    wait, or enables in a way `pulumi destroy` would disable."""
    enabled = {
        s["inputs"]["service"]: Plan.address(s)
        for s in plan.of_type(SERVICE)
        if s["inputs"].get("disableOnDestroy") is False
    }
    by_address = {Plan.address(r): r for r in plan["resources"]}
    missing: dict[str, set[str]] = {}
    for address, apis in required_apis(plan).items():
        waits_for = plan.waits_for(by_address[address])
        gaps = {
            api
            for api in apis - PREREQUISITES
            if api not in enabled or enabled[api] not in waits_for
        }
        if gaps:
            missing[address] = gaps
    return missing


def test_every_module_and_feature_api_is_a_real_google_api(plan: Plan) -> None:
    modules = {
        r["type"].split(":")[1].split("/")[0]
        for r in plan["resources"]
        if r["type"].startswith("gcp:")
    }
    assert modules <= set(MODULE_APIS)
    for api in [*MODULE_APIS.values(), *CLUSTER_FEATURES.values()]:
        assert service_name(api).endswith(".googleapis.com"), api


def test_every_api_the_stack_calls_is_enabled_and_waited_for(plan: Plan) -> None:
    assert missing_apis(plan) == {}


def test_image_streaming_api_is_enabled_before_the_cluster(plan: Plan) -> None:
    api = plan.one(SERVICE, _service_resource(plan, "containerfilesystem"))
    for region, cluster in plan.each_region(CLUSTER).items():
        streaming = "nodePoolDefaults.nodeConfigDefaults.gcfsConfig.enabled"
        assert _value(cluster["inputs"], streaming), region
        assert Plan.address(api) in plan.waits_for(cluster), region


def _service_resource(plan: Plan, api: str) -> str:
    (found,) = [
        s["name"] for s in plan.of_type(SERVICE) if s["inputs"]["service"].startswith(f"{api}.")
    ]
    return found


def test_no_api_is_disabled_on_destroy(plan: Plan) -> None:
    for service in plan.of_type(SERVICE):
        assert service["inputs"].get("disableOnDestroy") is False, service["name"]


@pytest.mark.parametrize("api", ["container.googleapis.com", "containerfilesystem.googleapis.com"])
def test_planted_api_not_enabled_is_caught(plans: dict[str, Plan], api: str) -> None:
    """Planted: the program no longer enables the API (its Service resource is gone); on dev,
    whose one cluster is the one that calls it."""
    plan = Plan(copy.deepcopy(dict(plans["dev"])))
    gone = {Plan.address(s) for s in plan.of_type(SERVICE) if s["inputs"]["service"] == api}
    plan["resources"] = [r for r in plan["resources"] if Plan.address(r) not in gone]
    for resource in plan["resources"]:
        resource["dependencies"] = [d for d in resource["dependencies"] if d not in gone]
    assert api in missing_apis(plan)[Plan.address(plan.one(CLUSTER))]


def test_planted_resource_not_waiting_for_its_api_is_caught(plans: dict[str, Plan]) -> None:
    plan = Plan(copy.deepcopy(dict(plans["dev"])))
    metric = plan.of_type("gcp:logging/metric:Metric")[0]
    metric["dependencies"] = []
    assert missing_apis(plan)[Plan.address(metric)] == {"logging.googleapis.com"}
