"""safer-cluster parity, asserted on what the program declares for each stack."""

from __future__ import annotations

import importlib
import inspect
import ipaddress
from typing import Any

from tests.infra.plans import Plan

CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"


def _clusters(plan: Plan) -> dict[str, dict[str, Any]]:
    """Each serving region's cluster inputs, by region (every region has exactly one)."""
    return {region: c["inputs"] for region, c in plan.each_region(CLUSTER).items()}


def _pools(plan: Plan) -> dict[str, list[dict[str, Any]]]:
    """Each region's node pool inputs, by region (every region has some)."""
    return {
        region: [pool["inputs"] for pool in pools]
        for region, pools in plan.in_each_region(NODE_POOL).items()
    }


def test_nodes_are_private_and_the_control_plane_is_allowlisted(plan: Plan) -> None:
    for region, cluster in _clusters(plan).items():
        assert cluster["privateClusterConfig"]["enablePrivateNodes"] is True, region
        master_range = cluster["privateClusterConfig"]["masterIpv4CidrBlock"]
        assert ipaddress.IPv4Network(master_range).prefixlen == 28, region
        networks = cluster["masterAuthorizedNetworksConfig"]
        assert networks["gcpPublicCidrsAccessEnabled"] is False, region
        assert networks["cidrBlocks"], f"{region}: the control plane is open to every address"
        for block in networks["cidrBlocks"]:
            assert ipaddress.IPv4Network(block["cidrBlock"]).prefixlen > 0, region


def test_identity_is_workload_identity_and_a_minimal_node_account(plan: Plan) -> None:
    """Each region's nodes run as that region's minimal node account."""
    project = plan.outputs["registryUrl"].split("/")[1]
    node_accounts = plan.each_region("gcp:serviceaccount/account:Account", "moderation-nodes")
    pulls = plan.each_region("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")
    pools = _pools(plan)
    for region, cluster in _clusters(plan).items():
        assert cluster["workloadIdentityConfig"]["workloadPool"] == f"{project}.svc.id.goog"
        account_id = node_accounts[region]["inputs"]["accountId"]
        node_email = f"{account_id}@{project}.iam.gserviceaccount.com"
        (default_pool,) = cluster["nodePools"]  # exists while the cluster is created, then removed
        assert default_pool["nodeConfig"]["serviceAccount"] == node_email, region
        for pool in pools[region]:
            assert pool["nodeConfig"]["serviceAccount"] == node_email, region
            assert pool["nodeConfig"]["workloadMetadataConfig"]["mode"] == "GKE_METADATA"
        roles = {
            binding["inputs"]["role"]
            for binding in plan.of_type("gcp:projects/iAMMember:IAMMember")
            if binding["inputs"]["member"] == f"serviceAccount:{node_email}"
        }
        assert roles == {"roles/container.defaultNodeServiceAccount"}, region
        pull = pulls[region]["inputs"]
        assert pull == {
            **pull,
            "role": "roles/artifactregistry.reader",
            "member": f"serviceAccount:{node_email}",
        }, region


def test_legacy_access_paths_are_closed(plan: Plan) -> None:
    pools = _pools(plan)
    for region, cluster in _clusters(plan).items():
        assert cluster["enableLegacyAbac"] is False, region
        client_certificate = cluster["masterAuth"]["clientCertificateConfig"]
        assert client_certificate["issueClientCertificate"] is False, region
        assert cluster["removeDefaultNodePool"] is True, region
        for pool in pools[region]:
            assert pool["nodeConfig"]["metadata"]["disable-legacy-endpoints"] == "true", region


def test_nodes_are_shielded(plan: Plan) -> None:
    pools = _pools(plan)
    for region, cluster in _clusters(plan).items():
        assert cluster["enableShieldedNodes"] is True, region
        for pool in pools[region]:
            shielded = pool["nodeConfig"]["shieldedInstanceConfig"]
            assert shielded == {"enableSecureBoot": True, "enableIntegrityMonitoring": True}
            assert pool["nodeConfig"]["imageType"] == "COS_CONTAINERD", region


def test_binary_authorization_admits_only_our_registry(plan: Plan) -> None:
    """Every region's cluster enforces the project's one policy (declared once per project)."""
    for region, cluster in _clusters(plan).items():
        evaluation = cluster["binaryAuthorization"]["evaluationMode"]
        assert evaluation == "PROJECT_SINGLETON_POLICY_ENFORCE", region
    policy = plan.one("gcp:binaryauthorization/policy:Policy")["inputs"]
    assert policy["defaultAdmissionRule"]["evaluationMode"] == "ALWAYS_DENY"
    assert policy["defaultAdmissionRule"]["enforcementMode"] == "ENFORCED_BLOCK_AND_AUDIT_LOG"
    assert policy["globalPolicyEvaluationMode"] == "ENABLE"
    patterns = [p["namePattern"] for p in policy["admissionWhitelistPatterns"]]
    assert f"{plan.outputs['registryUrl']}/**" in patterns
    deployments = plan.in_each_region("kubernetes:apps/v1:Deployment")
    for deployment in (
        d for region_deployments in deployments.values() for d in region_deployments
    ):
        for container in deployment["inputs"]["spec"]["template"]["spec"]["containers"]:
            assert any(_admitted(container["image"], pattern) for pattern in patterns), container


def _admitted(image: str, pattern: str) -> bool:
    """Binary Authorization name patterns: trailing `**` matches below, `*` within one segment."""
    if pattern.endswith("**"):
        return image.startswith(pattern.removesuffix("**"))
    if pattern.endswith("*"):
        prefix = pattern.removesuffix("*")
        return image.startswith(prefix) and "/" not in image.removeprefix(prefix)
    return image.split("@", 1)[0] == pattern


def test_admission_patterns_mean_what_binary_authorization_means() -> None:
    assert _admitted("gcr.io/nginx@sha256:00", "gcr.io/nginx*")
    assert not _admitted("gcr.io/nginx/image:1", "gcr.io/nginx*")
    assert _admitted("gcr.io/nginx/image:1", "gcr.io/nginx/**")
    assert not _admitted("gcr.io/other/image:1", "gcr.io/nginx/**")


def test_secrets_are_encrypted_with_a_rotating_kms_key(plan: Plan) -> None:
    """Each region's cluster encrypts with its own region's key (a key is regional)."""
    keys = plan.each_region("gcp:kms/cryptoKey:CryptoKey")
    grants = plan.each_region("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")
    for region, cluster in _clusters(plan).items():
        key = keys[region]
        encryption = {"state": "ENCRYPTED", "keyName": f"{key['name']}-id"}
        assert cluster["databaseEncryption"] == encryption, region
        assert key["inputs"]["purpose"] == "ENCRYPT_DECRYPT", region
        assert int(key["inputs"]["rotationPeriod"].removesuffix("s")) <= 90 * 86400, region
        grant = grants[region]["inputs"]
        assert grant["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter", region
        assert grant["member"].endswith("@container-engine-robot.iam.gserviceaccount.com")


def test_platform_features_are_on(plan: Plan) -> None:
    for region, cluster in _clusters(plan).items():
        # Dataplane V2 + NetworkPolicy
        assert cluster["datapathProvider"] == "ADVANCED_DATAPATH", region
        assert cluster["releaseChannel"]["channel"] in {"REGULAR", "STABLE"}, region
        recurrence = cluster["maintenancePolicy"]["recurringWindow"]["recurrence"]
        assert recurrence.startswith("FREQ="), region
        assert cluster["monitoringConfig"]["managedPrometheus"]["enabled"] is True, region
        assert cluster["gatewayApiConfig"]["channel"] == "CHANNEL_STANDARD", region
        assert cluster["costManagementConfig"]["enabled"] is True, region
        defaults = cluster["nodePoolDefaults"]["nodeConfigDefaults"]
        assert defaults["gcfsConfig"]["enabled"] is True, region
        assert cluster["networkingMode"] == "VPC_NATIVE", region


def test_network_is_private_with_nat_egress(plan: Plan) -> None:
    """One VPC; in each region a private subnet, NAT egress and a cluster on its ranges."""
    assert plan.one("gcp:compute/network:Network")["inputs"]["autoCreateSubnetworks"] is False
    subnets = plan.each_region("gcp:compute/subnetwork:Subnetwork")
    nats = plan.each_region("gcp:compute/routerNat:RouterNat")
    for region, cluster in _clusters(plan).items():
        subnet = subnets[region]["inputs"]
        assert subnet["privateIpGoogleAccess"] is True, region
        assert {r["rangeName"] for r in subnet["secondaryIpRanges"]} == {"pods", "services"}
        assert cluster["ipAllocationPolicy"] == {
            "clusterSecondaryRangeName": "pods",
            "servicesSecondaryRangeName": "services",
        }, region
        nat = nats[region]["inputs"]
        assert nat["sourceSubnetworkIpRangesToNat"] == "LIST_OF_SUBNETWORKS", region


def test_node_pools_split_system_and_model_work(plan: Plan) -> None:
    for region, region_pools in _pools(plan).items():
        pools = {p["nodeConfig"]["labels"]["moderation.dev/pool"]: p for p in region_pools}
        assert len(pools) == len(region_pools), region
        assert set(pools) == {"system", "model"}, region
        assert pools["system"]["nodeConfig"]["spot"] is False
        assert pools["system"]["nodeConfig"]["taints"] == []
        assert pools["model"]["nodeConfig"]["taints"] == [
            {"key": "moderation.dev/pool", "value": "model", "effect": "NO_SCHEDULE"}
        ]
        for pool in pools.values():
            autoscaling = pool["autoscaling"]
            assert autoscaling["totalMinNodeCount"] <= autoscaling["totalMaxNodeCount"], region
            assert pool["management"] == {"autoRepair": True, "autoUpgrade": True}, region
            assert pool["upgradeSettings"]["maxUnavailable"] == 0, region


def test_registry_cleans_up_but_keeps_recent_versions(plan: Plan) -> None:
    repository = plan.one("gcp:artifactregistry/repository:Repository")["inputs"]
    assert repository["format"] == "DOCKER"
    assert repository["dockerConfig"]["immutableTags"] is True
    assert repository["cleanupPolicyDryRun"] is False
    policies = {p["action"]: p for p in repository["cleanupPolicies"]}
    assert policies["KEEP"]["mostRecentVersions"]["keepCount"] >= 1
    assert policies["DELETE"]["condition"]["tagState"] == "UNTAGGED"
    assert plan.outputs["registryUrl"].endswith(f"/{repository['repositoryId']}")


# In order of preference: a NotificationChannel's `labels` are channel settings, not labels.
LABEL_ARGUMENTS = {
    "user_labels": "userLabels",
    "resource_labels": "resourceLabels",
    "labels": "labels",
}


def _label_input(resource_type: str) -> str | None:
    """The camelCase input through which this pulumi-gcp resource type takes labels, if any."""
    module, class_name = resource_type.removeprefix("gcp:").split(":")
    resource_class = getattr(
        importlib.import_module(f"pulumi_gcp.{module.split('/')[0]}"), class_name
    )
    parameters = inspect.signature(resource_class._internal_init).parameters
    return next((camel for snake, camel in LABEL_ARGUMENTS.items() if snake in parameters), None)


def test_every_gcp_resource_that_takes_labels_has_the_cost_labels(plan: Plan) -> None:
    expected = {"environment": plan.stack, "app": "moderation"}
    checked = 0
    for resource in plan["resources"]:
        if not resource["type"].startswith("gcp:"):
            continue
        field = _label_input(resource["type"])
        if field is None:
            continue
        labels = resource["inputs"].get(field) or {}
        assert expected.items() <= labels.items(), f"{resource['type']} {resource['name']}"
        assert labels.get("cost-center"), f"{resource['type']} {resource['name']}"
        checked += 1
    assert checked >= 4


def test_node_pools_label_their_vms(plan: Plan) -> None:
    for region, pools in _pools(plan).items():
        for pool in pools:
            labels = pool["nodeConfig"]["resourceLabels"]
            expected = {"environment": plan.stack, "app": "moderation"}
            assert expected.items() <= labels.items(), region
