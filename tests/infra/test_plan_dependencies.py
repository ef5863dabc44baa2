"""Preconditions the real APIs enforce, held over the plan's dependency graph.

Mocks create everything at once and in any order; the cloud does not. Each resource in the plan
lists what the engine makes it wait for (`depends_on`, the Outputs in its inputs, its provider):
these tests check that what must exist first really comes first.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.plans import KUBERNETES_API_GROUPS, Plan

CLUSTER = "gcp:container/cluster:Cluster::moderation"


def _cluster(plan: Plan) -> dict[str, Any]:
    return plan.one("gcp:container/cluster:Cluster")["inputs"]


def _gateway_api(cluster: dict[str, Any]) -> bool:
    return cluster.get("gatewayApiConfig", {}).get("channel", "CHANNEL_DISABLED") != (
        "CHANNEL_DISABLED"
    )


# Each custom resource's API group, and the cluster setting that installs its CRDs.
CRD_FEATURES = {
    "gateway.networking.k8s.io": _gateway_api,
    "networking.gke.io": _gateway_api,
    "monitoring.googleapis.com": lambda cluster: (
        cluster["monitoringConfig"]["managedPrometheus"]["enabled"] is True
    ),
    "secrets-store.csi.x-k8s.io": lambda cluster: (
        cluster.get("secretManagerConfig", {}).get("enabled") is True
    ),
}


def _api_group(resource_type: str) -> str:
    return resource_type.split(":")[1].split("/")[0]


def test_every_resource_lists_dependencies_that_exist_in_the_plan(plan: Plan) -> None:
    addresses = {plan.address(r) for r in plan["resources"]}
    for resource in plan["resources"]:
        assert isinstance(resource["dependencies"], list)
        assert set(resource["dependencies"]) <= addresses, plan.address(resource)


def test_dependencies_come_from_depends_on_outputs_and_providers(plan: Plan) -> None:
    """One of each kind, so that the graph the tests below walk is the engine's."""
    cluster = plan.one("gcp:container/cluster:Cluster")
    # depends_on: the cluster waits until its grants (the GKE agent's on the KMS key) work.
    assert "time:index/sleep:Sleep::moderation-iam-propagation" in cluster["dependencies"]
    # an Output in the inputs: the subnet's id.
    assert "gcp:compute/subnetwork:Subnetwork::moderation-nodes" in cluster["dependencies"]
    # the provider: Kubernetes objects wait for the provider, which waits for the node pools.
    namespace = plan.one("kubernetes:core/v1:Namespace", "moderation")
    assert "pulumi:providers:kubernetes::gke" in namespace["dependencies"]
    assert {"gcp:container/nodePool:NodePool::moderation-system", CLUSTER} <= plan.waits_for(
        namespace
    )
    # and a resource that waits for nothing says so: an API the program turns on.
    (compute_api,) = [
        s for s in plan.of_type("gcp:projects/service:Service") if s["name"] == "moderation-compute"
    ]
    assert compute_api["dependencies"] == []


def test_workload_identity_members_wait_for_the_identity_pool(plan: Plan) -> None:
    """`<project>.svc.id.goog` exists only once a Workload Identity cluster does: IAM rejects a
    binding to it before ("Identity Pool does not exist") on a project that never had one."""
    members = [
        r for r in plan["resources"] if ".svc.id.goog[" in str(r["inputs"].get("member", ""))
    ]
    assert len(members) >= 1
    for member in members:
        assert CLUSTER in plan.waits_for(member), plan.address(member)


def test_custom_resources_wait_for_the_cluster_feature_that_installs_their_crds(
    plan: Plan,
) -> None:
    cluster = _cluster(plan)
    custom = [
        r
        for r in plan["resources"]
        if r["type"].startswith("kubernetes:")
        and _api_group(r["type"]) not in KUBERNETES_API_GROUPS
    ]
    assert {_api_group(r["type"]) for r in custom} <= set(CRD_FEATURES), "unknown CRD group"
    for resource in custom:
        assert CRD_FEATURES[_api_group(resource["type"])](cluster), plan.address(resource)
        assert CLUSTER in plan.waits_for(resource), plan.address(resource)


def test_the_secret_provider_class_and_the_pods_wait_for_what_they_mount(plan: Plan) -> None:
    provider_class = plan.one("kubernetes:secrets-store.csi.x-k8s.io/v1:SecretProviderClass")
    assert _cluster(plan)["secretManagerConfig"] == {"enabled": True}
    waits = plan.waits_for(provider_class)
    assert any(a.startswith("gcp:secretmanager/secretVersion:SecretVersion::") for a in waits)
    for deployment in plan.of_type("kubernetes:apps/v1:Deployment"):
        if "moderation.dev/track" not in deployment["inputs"]["metadata"].get("labels", {}):
            continue
        waits = plan.waits_for(deployment)
        assert plan.address(provider_class) in waits
        assert any(a.startswith("gcp:secretmanager/secretIamMember:") for a in waits)


def test_certificate_map_entries_and_the_gateway_wait_for_the_certificate(plan: Plan) -> None:
    certificate = plan.address(plan.one("gcp:certificatemanager/certificate:Certificate"))
    entries = plan.of_type("gcp:certificatemanager/certificateMapEntry:CertificateMapEntry")
    assert entries
    for entry in entries:
        assert certificate in entry["dependencies"]
    gateway = plan.one("kubernetes:gateway.networking.k8s.io/v1:Gateway")
    waits = plan.waits_for(gateway)
    assert "gcp:compute/globalAddress:GlobalAddress::moderation-ip" in waits
    assert "gcp:certificatemanager/certificateMap:CertificateMap::moderation-certmap" in waits


@pytest.mark.parametrize(
    "grant_type",
    [
        "gcp:bigquery/datasetIamMember:DatasetIamMember",
        "gcp:storage/bucketIAMMember:BucketIAMMember",
    ],
)
def test_sink_writer_grants_wait_for_the_sink_that_has_the_identity(
    plan: Plan, grant_type: str
) -> None:
    (grant,) = plan.of_type(grant_type)
    assert any(d.startswith("gcp:logging/projectSink:ProjectSink::") for d in grant["dependencies"])
