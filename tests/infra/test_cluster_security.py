"""safer-cluster parity, asserted on what the program declares for each stack."""

from __future__ import annotations

import importlib
import inspect
import ipaddress
from typing import Any

from tests.infra.plans import Plan

CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"


def _cluster(plan: Plan) -> dict[str, Any]:
    return plan.one(CLUSTER)["inputs"]


def test_nodes_are_private_and_the_control_plane_is_allowlisted(plan: Plan) -> None:
    cluster = _cluster(plan)
    assert cluster["privateClusterConfig"]["enablePrivateNodes"] is True
    assert (
        ipaddress.IPv4Network(cluster["privateClusterConfig"]["masterIpv4CidrBlock"]).prefixlen
        == 28
    )
    networks = cluster["masterAuthorizedNetworksConfig"]
    assert networks["gcpPublicCidrsAccessEnabled"] is False
    assert networks["cidrBlocks"], "the control plane must not be open to every address"
    for block in networks["cidrBlocks"]:
        assert ipaddress.IPv4Network(block["cidrBlock"]).prefixlen > 0


def test_identity_is_workload_identity_and_a_minimal_node_account(plan: Plan) -> None:
    cluster = _cluster(plan)
    project = plan.outputs["registryUrl"].split("/")[1]
    assert cluster["workloadIdentityConfig"]["workloadPool"] == f"{project}.svc.id.goog"
    node_account = plan.one("gcp:serviceaccount/account:Account", "moderation-nodes")
    node_email = f"{node_account['inputs']['accountId']}@{project}.iam.gserviceaccount.com"
    (default_pool,) = cluster["nodePools"]  # exists while the cluster is created, then removed
    assert default_pool["nodeConfig"]["serviceAccount"] == node_email
    for pool in plan.of_type(NODE_POOL):
        assert pool["inputs"]["nodeConfig"]["serviceAccount"] == node_email
        assert pool["inputs"]["nodeConfig"]["workloadMetadataConfig"]["mode"] == "GKE_METADATA"
    roles = {
        binding["inputs"]["role"]
        for binding in plan.of_type("gcp:projects/iAMMember:IAMMember")
        if binding["inputs"]["member"] == f"serviceAccount:{node_email}"
    }
    assert roles == {"roles/container.defaultNodeServiceAccount"}
    pull = plan.one("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")
    assert pull["inputs"] == {
        **pull["inputs"],
        "role": "roles/artifactregistry.reader",
        "member": f"serviceAccount:{node_email}",
    }


def test_legacy_access_paths_are_closed(plan: Plan) -> None:
    cluster = _cluster(plan)
    assert cluster["enableLegacyAbac"] is False
    assert cluster["masterAuth"]["clientCertificateConfig"]["issueClientCertificate"] is False
    assert cluster["removeDefaultNodePool"] is True
    for pool in plan.of_type(NODE_POOL):
        assert pool["inputs"]["nodeConfig"]["metadata"]["disable-legacy-endpoints"] == "true"


def test_nodes_are_shielded(plan: Plan) -> None:
    assert _cluster(plan)["enableShieldedNodes"] is True
    for pool in plan.of_type(NODE_POOL):
        shielded = pool["inputs"]["nodeConfig"]["shieldedInstanceConfig"]
        assert shielded == {"enableSecureBoot": True, "enableIntegrityMonitoring": True}
        assert pool["inputs"]["nodeConfig"]["imageType"] == "COS_CONTAINERD"


def test_binary_authorization_admits_only_our_registry(plan: Plan) -> None:
    cluster = _cluster(plan)
    assert cluster["binaryAuthorization"]["evaluationMode"] == "PROJECT_SINGLETON_POLICY_ENFORCE"
    policy = plan.one("gcp:binaryauthorization/policy:Policy")["inputs"]
    assert policy["defaultAdmissionRule"]["evaluationMode"] == "ALWAYS_DENY"
    assert policy["defaultAdmissionRule"]["enforcementMode"] == "ENFORCED_BLOCK_AND_AUDIT_LOG"
    assert policy["globalPolicyEvaluationMode"] == "ENABLE"
    patterns = [p["namePattern"] for p in policy["admissionWhitelistPatterns"]]
    assert f"{plan.outputs['registryUrl']}/**" in patterns
    deployments = plan.of_type("kubernetes:apps/v1:Deployment")
    assert deployments
    for deployment in deployments:
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
    cluster = _cluster(plan)
    key = plan.one("gcp:kms/cryptoKey:CryptoKey")
    assert cluster["databaseEncryption"] == {"state": "ENCRYPTED", "keyName": f"{key['name']}-id"}
    assert key["inputs"]["purpose"] == "ENCRYPT_DECRYPT"
    assert int(key["inputs"]["rotationPeriod"].removesuffix("s")) <= 90 * 86400
    grant = plan.one("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")["inputs"]
    assert grant["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter"
    assert grant["member"].endswith("@container-engine-robot.iam.gserviceaccount.com")


def test_platform_features_are_on(plan: Plan) -> None:
    cluster = _cluster(plan)
    assert cluster["datapathProvider"] == "ADVANCED_DATAPATH"  # Dataplane V2 + NetworkPolicy
    assert cluster["releaseChannel"]["channel"] in {"REGULAR", "STABLE"}
    assert cluster["maintenancePolicy"]["recurringWindow"]["recurrence"].startswith("FREQ=")
    assert cluster["monitoringConfig"]["managedPrometheus"]["enabled"] is True
    assert cluster["gatewayApiConfig"]["channel"] == "CHANNEL_STANDARD"
    assert cluster["costManagementConfig"]["enabled"] is True
    assert cluster["nodePoolDefaults"]["nodeConfigDefaults"]["gcfsConfig"]["enabled"] is True
    assert cluster["networkingMode"] == "VPC_NATIVE"


def test_network_is_private_with_nat_egress(plan: Plan) -> None:
    subnet = plan.one("gcp:compute/subnetwork:Subnetwork")["inputs"]
    assert subnet["privateIpGoogleAccess"] is True
    assert {r["rangeName"] for r in subnet["secondaryIpRanges"]} == {"pods", "services"}
    cluster = _cluster(plan)
    assert cluster["ipAllocationPolicy"] == {
        "clusterSecondaryRangeName": "pods",
        "servicesSecondaryRangeName": "services",
    }
    assert plan.one("gcp:compute/network:Network")["inputs"]["autoCreateSubnetworks"] is False
    nat = plan.one("gcp:compute/routerNat:RouterNat")["inputs"]
    assert nat["sourceSubnetworkIpRangesToNat"] == "LIST_OF_SUBNETWORKS"


def test_node_pools_split_system_and_model_work(plan: Plan) -> None:
    pools = {
        p["inputs"]["nodeConfig"]["labels"]["moderation.dev/pool"]: p["inputs"]
        for p in plan.of_type(NODE_POOL)
    }
    assert set(pools) == {"system", "model"}
    assert pools["system"]["nodeConfig"]["spot"] is False
    assert pools["system"]["nodeConfig"]["taints"] == []
    assert pools["model"]["nodeConfig"]["taints"] == [
        {"key": "moderation.dev/pool", "value": "model", "effect": "NO_SCHEDULE"}
    ]
    for pool in pools.values():
        assert pool["autoscaling"]["totalMinNodeCount"] <= pool["autoscaling"]["totalMaxNodeCount"]
        assert pool["management"] == {"autoRepair": True, "autoUpgrade": True}
        assert pool["upgradeSettings"]["maxUnavailable"] == 0


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
    for pool in plan.of_type(NODE_POOL):
        labels = pool["inputs"]["nodeConfig"]["resourceLabels"]
        assert {"environment": plan.stack, "app": "moderation"}.items() <= labels.items()
