"""Preconditions the real APIs enforce, held over the plan's dependency graph.

Mocks create everything at once and in any order; the cloud does not. Each resource in the plan
lists what the engine makes it wait for (`depends_on`, the Outputs in its inputs, its provider):
these tests check that what must exist first really comes first.
"""

from __future__ import annotations

from typing import Any

import pytest

from infra.fleet import SERVICES_FEATURE
from tests.infra.plans import KUBERNETES_API_GROUPS, Plan

CLUSTER = "gcp:container/cluster:Cluster"
MEMBERSHIP = "gcp:gkehub/membership:Membership"


def _clusters(plan: Plan) -> dict[str, dict[str, Any]]:
    """Each serving region's cluster, by region."""
    return plan.each_region(CLUSTER)


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


# API groups whose CRDs a fleet feature installs in each member cluster, and that feature.
FLEET_CRD_FEATURES = {"net.gke.io": f"gcp:gkehub/feature:Feature::moderation-{SERVICES_FEATURE}"}


def _api_group(resource_type: str) -> str:
    return resource_type.split(":")[1].split("/")[0]


def test_every_resource_lists_dependencies_that_exist_in_the_plan(plan: Plan) -> None:
    addresses = {plan.address(r) for r in plan["resources"]}
    for resource in plan["resources"]:
        assert isinstance(resource["dependencies"], list)
        assert set(resource["dependencies"]) <= addresses, plan.address(resource)


def test_dependencies_come_from_depends_on_outputs_and_providers(plan: Plan) -> None:
    """One of each kind, so that the graph the tests below walk is the engine's; in every
    region, each with its own region's resources."""
    sleeps = plan.each_region("time:index/sleep:Sleep", "moderation-iam-propagation")
    subnets = plan.each_region("gcp:compute/subnetwork:Subnetwork")
    namespaces = plan.each_region("kubernetes:core/v1:Namespace", "moderation")
    providers = plan.each_region("pulumi:providers:kubernetes")
    system_pools = plan.each_region("gcp:container/nodePool:NodePool", "moderation-system")
    for region, cluster in _clusters(plan).items():
        # depends_on: the cluster waits until its grants (the GKE agent's on the KMS key) work.
        assert plan.address(sleeps[region]) in cluster["dependencies"], region
        # an Output in the inputs: the subnet's id.
        assert plan.address(subnets[region]) in cluster["dependencies"], region
        # the provider: Kubernetes objects wait for the provider, which waits for the node pools.
        namespace = namespaces[region]
        assert plan.address(providers[region]) in namespace["dependencies"], region
        expected = {plan.address(system_pools[region]), plan.address(cluster)}
        assert expected <= plan.waits_for(namespace), region
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
    clusters = _clusters(plan)
    for member in members:
        cluster = plan.address(clusters[plan.region_of(member)])
        assert cluster in plan.waits_for(member), plan.address(member)


def test_custom_resources_wait_for_the_cluster_feature_that_installs_their_crds(
    plan: Plan,
) -> None:
    clusters = _clusters(plan)
    custom = [
        r
        for r in plan["resources"]
        if r["type"].startswith("kubernetes:")
        and _api_group(r["type"]) not in KUBERNETES_API_GROUPS
    ]
    known = set(CRD_FEATURES) | set(FLEET_CRD_FEATURES)
    assert {_api_group(r["type"]) for r in custom} <= known, "unknown CRD group"
    memberships = plan.of_type(MEMBERSHIP)
    for resource in custom:
        region = plan.region_of(resource)
        cluster = clusters[region]  # the one it is applied to
        waits = plan.waits_for(resource)
        assert plan.address(cluster) in waits, plan.address(resource)
        group = _api_group(resource["type"])
        if group in CRD_FEATURES:
            assert CRD_FEATURES[group](cluster["inputs"]), plan.address(resource)
            continue
        # Installed by the fleet feature in its cluster once that cluster is a member.
        (membership,) = [m for m in memberships if m["inputs"]["location"] == region]
        assert {FLEET_CRD_FEATURES[group], plan.address(membership)} <= waits, plan.address(
            resource
        )


def test_the_secret_provider_class_and_the_pods_wait_for_what_they_mount(plan: Plan) -> None:
    """In each region: its cluster's add-on, its provider class after its own secret version,
    and its pods after both its provider class and its read grant."""
    provider_classes = plan.each_region(
        "kubernetes:secrets-store.csi.x-k8s.io/v1:SecretProviderClass"
    )
    versions = plan.each_region("gcp:secretmanager/secretVersion:SecretVersion")
    grants = plan.each_region("gcp:secretmanager/secretIamMember:SecretIamMember")
    deployments = plan.in_each_region("kubernetes:apps/v1:Deployment")
    for region, cluster in _clusters(plan).items():
        assert cluster["inputs"]["secretManagerConfig"] == {"enabled": True}, region
        provider_class = provider_classes[region]
        assert plan.address(versions[region]) in plan.waits_for(provider_class), region
        tracks = [
            d
            for d in deployments[region]
            if "moderation.dev/track" in d["inputs"]["metadata"].get("labels", {})
        ]
        assert tracks, region
        for deployment in tracks:
            waits = plan.waits_for(deployment)
            assert plan.address(provider_class) in waits, region
            assert plan.address(grants[region]) in waits, region


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
