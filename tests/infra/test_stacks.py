"""Same code, two stacks: dev and prod differ only where their config says so."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

from tests.infra.plans import Plan

# Inputs of the core components allowed to differ between dev and prod (list indices dropped).
# Anything else differing is a stack leaking into code, or a config key nobody meant to vary.
EXPECTED_DIFFERENCES = {
    "gcp:container/cluster:Cluster": {
        "location",
        "nodeLocations",
        "deletionProtection",
        "releaseChannel.channel",
        "masterAuthorizedNetworksConfig.cidrBlocks.cidrBlock",
        "masterAuthorizedNetworksConfig.cidrBlocks.displayName",
        "privateClusterConfig.masterIpv4CidrBlock",
        "resourceLabels.environment",
    },
    "gcp:container/nodePool:NodePool": {
        "location",
        "nodeLocations",
        "autoscaling.totalMinNodeCount",
        "autoscaling.totalMaxNodeCount",
        "autoscaling.locationPolicy",
        "nodeConfig.machineType",
        "nodeConfig.spot",
        "nodeConfig.resourceLabels.environment",
    },
    "gcp:compute/subnetwork:Subnetwork": {
        "ipCidrRange",
        "secondaryIpRanges.ipCidrRange",
        "logConfig.aggregationInterval",
        "logConfig.flowSampling",
        "logConfig.metadata",
    },
    "gcp:artifactregistry/repository:Repository": {
        "cleanupPolicies.mostRecentVersions.keepCount",
        "cleanupPolicies.condition.olderThan",
        "labels.environment",
    },
    "gcp:kms/cryptoKey:CryptoKey": {"labels.environment"},
    "kubernetes:apps/v1:Deployment": {
        f"spec.template.spec.containers.resources.{kind}.{resource}"
        for kind in ("requests", "limits")
        for resource in ("cpu", "memory")
    }
    # MODERATION_INFERENCE_THREADS (the whole cores of the CPU request) and the per-key rate limit.
    | {"spec.template.spec.containers.env.value"}
    # dev builds its image from the Bento, prod runs a prebuilt one (release.stable.image).
    | {"spec.template.spec.containers.image"},
    # The metrics adapter admits its callers from the control plane's range (network.masterCidr).
    "kubernetes:networking.k8s.io/v1:NetworkPolicy": {"spec.ingress.from.ipBlock.cidr"},
    "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": {
        "spec.minReplicas",
        "spec.maxReplicas",
        "spec.metrics.type",
        "spec.metrics.resource.target.averageUtilization",
        "spec.metrics.pods.metric.name",
        "spec.metrics.pods.target.type",
        "spec.metrics.pods.target.averageValue",
    },
}
CHECKED_TYPES = {
    *EXPECTED_DIFFERENCES,
    "gcp:compute/network:Network",
    "gcp:compute/router:Router",
    "gcp:compute/routerNat:RouterNat",
    "gcp:kms/keyRing:KeyRing",
    "gcp:binaryauthorization/policy:Policy",
    "gcp:serviceaccount/account:Account",
    "kubernetes:core/v1:Namespace",
    "kubernetes:core/v1:ServiceAccount",
    "kubernetes:core/v1:Service",
    "kubernetes:networking.k8s.io/v1:NetworkPolicy",
    "kubernetes:policy/v1:PodDisruptionBudget",
    "kubernetes:monitoring.googleapis.com/v1:PodMonitoring",
}


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def _identity(resource: dict[str, Any], inputs: dict[str, Any]) -> tuple[str | None, ...]:
    """Type and logical name, plus what names it in the cloud: components may reuse child names."""
    metadata = inputs.get("metadata", {})
    return (
        resource["type"],
        resource["name"],
        metadata.get("namespace"),
        metadata.get("name"),
        inputs.get("accountId"),
        inputs.get("member"),
    )


def _by_identity(plan: Plan) -> dict[tuple[str | None, ...], dict[str, Any]]:
    """Resources by identity, as flat {path: value}, with the stack's project id made generic."""
    project = plan.outputs["registryUrl"].split("/")[1]
    keyed = {}
    for resource in plan["resources"]:
        generic = json.loads(json.dumps(resource["inputs"]).replace(project, "<project>"))
        keyed[_identity(resource, generic)] = dict(_leaves(generic))
    assert len(keyed) == len(plan["resources"]), "two resources share an identity"
    return keyed


def test_both_stacks_declare_the_same_core_resources(plans: dict[str, Plan]) -> None:
    dev, prod = (
        Counter(r["type"] for r in plans[stack]["resources"] if r["type"] in CHECKED_TYPES)
        for stack in ("dev", "prod")
    )
    assert dev == prod
    assert dev.keys() == CHECKED_TYPES


def test_core_components_differ_only_in_configured_fields(plans: dict[str, Plan]) -> None:
    dev, prod = _by_identity(plans["dev"]), _by_identity(plans["prod"])
    checked = [key for key in dev if key[0] in CHECKED_TYPES]
    assert len(checked) >= 20
    unexpected = {}
    for key in checked:
        assert key in prod, f"{key} only in dev"
        differing = {
            re.sub(r"\[\d+\]", "", path)
            for path in dev[key].keys() | prod[key].keys()
            if dev[key].get(path) != prod[key].get(path)
        }
        extra = differing - EXPECTED_DIFFERENCES.get(key[0], set())
        if extra:
            unexpected[key] = sorted(extra)
    assert not unexpected


def test_prod_is_the_hardened_highly_available_one(plans: dict[str, Plan]) -> None:
    def cluster(stack: str) -> dict[str, Any]:
        return plans[stack].one("gcp:container/cluster:Cluster")["inputs"]

    def model_pool(stack: str) -> dict[str, Any]:
        return plans[stack].one("gcp:container/nodePool:NodePool", "moderation-model")["inputs"]

    assert cluster("prod")["deletionProtection"] is True
    assert cluster("dev")["deletionProtection"] is False
    assert cluster("prod")["location"] == "europe-west1"  # regional control plane
    assert cluster("dev")["location"] == "europe-west1-b"  # one zonal, free-tier control plane
    assert len(model_pool("prod")["nodeLocations"]) == 3
    assert model_pool("dev")["nodeConfig"]["spot"] is True
    assert model_pool("prod")["nodeConfig"]["spot"] is False
    subnets = {s: plans[s].one("gcp:compute/subnetwork:Subnetwork")["inputs"] for s in plans}
    assert "logConfig" in subnets["prod"] and "logConfig" not in subnets["dev"]
    hpa = {
        s: plans[s].one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")["inputs"]["spec"]
        for s in plans
    }
    assert hpa["prod"]["minReplicas"] >= 2 > hpa["dev"]["minReplicas"]


def test_a_gpu_pool_is_added_by_config_alone(plan_variant: Any) -> None:
    def add_gpu(config: dict[str, Any]) -> None:
        config["moderation:nodePools"]["gpu"] = {
            "machineType": "g2-standard-8",
            "minNodes": 0,
            "maxNodes": 4,  # one L4 each: maxReplicas 3 + 1 surge pod
            "spot": True,
            "acceleratorType": "nvidia-l4",
        }
        config["moderation:workload"]["nodePool"] = "gpu"

    plan = plan_variant("dev", add_gpu)
    pools = {p["name"]: p["inputs"] for p in plan.of_type("gcp:container/nodePool:NodePool")}
    gpu = pools["moderation-gpu"]["nodeConfig"]
    assert gpu["guestAccelerators"][0]["type"] == "nvidia-l4"
    assert (
        gpu["guestAccelerators"][0]["gpuDriverInstallationConfig"]["gpuDriverVersion"] == "LATEST"
    )
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"} in gpu["taints"]
    assert gpu["shieldedInstanceConfig"]["enableSecureBoot"] is True
    pod = plan.one("kubernetes:apps/v1:Deployment", "moderation-stable")["inputs"]["spec"][
        "template"
    ]["spec"]
    assert pod["nodeSelector"] == {"moderation.dev/pool": "gpu"}
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert "gpuSharingConfig" not in gpu["guestAccelerators"][0]
    env = {item["name"]: item["value"] for item in pod["containers"][0]["env"]}
    assert env["MODERATION_INFERENCE_LANES"] == "1"  # CPU pods: one lane per thread, the default
    cpu_pod = plan_variant("dev", lambda config: None).one(
        "kubernetes:apps/v1:Deployment", "moderation-stable"
    )["inputs"]["spec"]["template"]["spec"]
    assert "MODERATION_INFERENCE_LANES" not in {
        item["name"] for item in cpu_pod["containers"][0]["env"]
    }


def test_a_gpu_pool_can_time_share_its_l4_between_tracks(plan_variant: Any) -> None:
    def add_shared_l4(config: dict[str, Any]) -> None:
        config["moderation:nodePools"]["gpu"] = {
            "machineType": "g2-standard-4",
            "minNodes": 0,
            "maxNodes": 2,
            "acceleratorType": "nvidia-l4",
            "sharing": {"maxSharedClientsPerGpu": 2},
        }
        config["moderation:workload"]["nodePool"] = "gpu"

    plan = plan_variant("dev", add_shared_l4)
    gpu = plan.one("gcp:container/nodePool:NodePool", "moderation-gpu")["inputs"]["nodeConfig"]
    (accelerator,) = gpu["guestAccelerators"]
    assert accelerator["gpuSharingConfig"] == {
        "gpuSharingStrategy": "TIME_SHARING",
        "maxSharedClientsPerGpu": 2,
    }
    assert gpu["machineType"] == "g2-standard-4"
