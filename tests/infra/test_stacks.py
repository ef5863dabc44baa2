"""Same code, two stacks: dev and prod differ only where their config says so."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

from service.settings import Settings
from tests.infra.plans import Plan, without_region

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


# One per stack whatever its regions; every other checked type is one set per serving region.
STACK_WIDE_TYPES = {
    "gcp:compute/network:Network",
    "gcp:binaryauthorization/policy:Policy",
    "gcp:artifactregistry/repository:Repository",
}


# Inputs of a region's core components allowed to differ from the stack's own region's: where it
# is (region, zones, address ranges) and the names of its own copies (key, accounts, router).
# Anything else differing is a region that is not the same hardened copy.
REGION_DIFFERENCES = {
    "gcp:compute/router:Router": {"region"},
    "gcp:compute/routerNat:RouterNat": {"region", "router", "subnetworks.name"},
    "gcp:compute/subnetwork:Subnetwork": {
        "region",
        "ipCidrRange",
        "secondaryIpRanges.ipCidrRange",
    },
    "gcp:container/cluster:Cluster": {
        "location",
        "nodeLocations",
        "subnetwork",
        "privateClusterConfig.masterIpv4CidrBlock",
        "databaseEncryption.keyName",
        "nodePools.nodeConfig.serviceAccount",
    },
    "gcp:container/nodePool:NodePool": {
        "cluster",
        "location",
        "nodeLocations",
        "nodeConfig.serviceAccount",
    },
    "gcp:kms/keyRing:KeyRing": {"location"},
    "gcp:kms/cryptoKey:CryptoKey": {"keyRing"},
    "gcp:serviceaccount/account:Account": {"accountId"},
    # Each region's pods mount its own copy of the key hashes, as their own account.
    "kubernetes:apps/v1:Deployment": {
        "spec.template.metadata.annotations.moderation.dev/api-keys-revision"
    },
    "kubernetes:core/v1:ServiceAccount": {"metadata.annotations.iam.gke.io/gcp-service-account"},
    # The metrics adapter admits its own cluster's control plane.
    "kubernetes:networking.k8s.io/v1:NetworkPolicy": {"spec.ingress.from.ipBlock.cidr"},
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


def _core_counts(plan: Plan, region: str | None) -> Counter[str]:
    """How many of each checked type the stack declares once (`region` None), or in a region."""
    return Counter(
        r["type"]
        for r in plan["resources"]
        if r["type"] in CHECKED_TYPES
        and (
            r["type"] in STACK_WIDE_TYPES
            if region is None
            else r["type"] not in STACK_WIDE_TYPES and plan.region_of(r) == region
        )
    )


def test_both_stacks_declare_the_same_core_resources(plans: dict[str, Plan]) -> None:
    """Once per stack the shared ones, and the same set in each of prod's regions as dev's one."""
    dev, prod = plans["dev"], plans["prod"]
    (dev_region,) = dev.regions
    assert _core_counts(prod, None) == _core_counts(dev, None)
    assert _core_counts(dev, None).keys() == STACK_WIDE_TYPES
    regional = _core_counts(dev, dev_region)
    assert regional.keys() == CHECKED_TYPES - STACK_WIDE_TYPES
    for region in prod.regions:
        assert _core_counts(prod, region) == regional, region


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


def test_every_region_is_a_copy_of_the_stacks_own_region_but_where_it_is(
    plans: dict[str, Plan],
) -> None:
    """Each of prod's other regions declares the stack's own region's core components, with
    the same inputs but for its location, ranges and its own copies' names."""
    prod = plans["prod"]
    home, *others = prod.regions
    assert others, "prod serves from several regions"
    resources = {(r["type"], r["name"]): r for r in prod["resources"]}
    checked, unexpected = 0, {}
    for resource in prod["resources"]:
        region = prod.region_of(resource)
        regional = resource["type"] in CHECKED_TYPES - STACK_WIDE_TYPES
        if not regional or region == home:
            continue
        original = resources[(resource["type"], without_region(resource["name"], region))]
        assert prod.region_of(original) == home, resource["name"]
        mine, theirs = dict(_leaves(resource["inputs"])), dict(_leaves(original["inputs"]))
        differing = {
            re.sub(r"\[\d+\]", "", path)
            for path in mine.keys() | theirs.keys()
            if mine.get(path) != theirs.get(path)
        }
        extra = differing - REGION_DIFFERENCES.get(resource["type"], set())
        if extra:
            unexpected[resource["name"]] = sorted(extra)
        checked += 1
    assert checked >= 20
    assert not unexpected


def test_prod_is_the_hardened_highly_available_one(plans: dict[str, Plan]) -> None:
    """Every prod region against dev's one; prod serves from two regions, dev from one."""

    def each(stack: str, resource_type: str, name: str | None = None) -> dict[str, Any]:
        found = plans[stack].each_region(resource_type, name)
        return {region: resource["inputs"] for region, resource in found.items()}

    assert list(each("dev", "gcp:container/cluster:Cluster")) == ["europe-west1"]
    assert list(each("prod", "gcp:container/cluster:Cluster")) == ["europe-west1", "us-central1"]
    (dev_cluster,) = each("dev", "gcp:container/cluster:Cluster").values()
    assert dev_cluster["deletionProtection"] is False
    assert dev_cluster["location"] == "europe-west1-b"  # one zonal, free-tier control plane
    (dev_pool,) = each("dev", "gcp:container/nodePool:NodePool", "moderation-model").values()
    assert dev_pool["nodeConfig"]["spot"] is True
    (dev_subnet,) = each("dev", "gcp:compute/subnetwork:Subnetwork").values()
    assert "logConfig" not in dev_subnet
    hpa = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
    (dev_hpa,) = each("dev", hpa).values()
    prod_pools = each("prod", "gcp:container/nodePool:NodePool", "moderation-model")
    prod_subnets = each("prod", "gcp:compute/subnetwork:Subnetwork")
    prod_hpas = each("prod", hpa)
    for region, cluster in each("prod", "gcp:container/cluster:Cluster").items():
        assert cluster["deletionProtection"] is True, region
        assert cluster["location"] == region  # regional control plane
        assert len(prod_pools[region]["nodeLocations"]) == 3, region
        assert prod_pools[region]["nodeConfig"]["spot"] is False, region
        assert "logConfig" in prod_subnets[region], region
        assert prod_hpas[region]["spec"]["minReplicas"] >= 2 > dev_hpa["spec"]["minReplicas"]


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
    assert int(env["MODERATION_MAX_BATCH_CHARS"]) > Settings().max_batch_chars
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
