"""References by name are dependencies. A Kubernetes object that names a GCP resource (the GKE
Gateway's static address and certificate map, the SSL policy of a `GCPGatewayPolicy`, the Cloud
Armor policy of a `GCPBackendPolicy`, ...) makes GKE's controllers attach that resource to a load
balancer. Pulumi orders creation and deletion only by `dependencies`: without one, `pulumi
destroy` (or a rename) deletes the GCP resource in parallel with the object, and Compute refuses
while the load balancer still uses it ("resource in use"). So each named resource must be a
transitive dependency of the object, and of the Gateway whose load balancer uses it."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from tests.infra.plans import Plan

GATEWAY_API_GROUP = "gateway.networking.k8s.io"


def _strings(value: Any) -> Iterator[str]:
    """Every string in a value, and each `/`-separated part of it (resource paths)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value
        yield from value.split("/")


def _gcp_identifiers(plan: Plan) -> dict[str, set[str]]:
    """What a Kubernetes object can name a GCP resource by -> the resources of that name."""
    found: dict[str, set[str]] = {}
    # Every region's cluster is in the stack's project: one workload pool, one account domain.
    (domain,) = {
        cluster["inputs"]["workloadIdentityConfig"]["workloadPool"].removesuffix(".svc.id.goog")
        for cluster in plan.each_region("gcp:container/cluster:Cluster").values()
    }
    for resource in plan["resources"]:
        if not resource["type"].startswith("gcp:"):
            continue
        inputs = resource["inputs"]
        names = [inputs.get(key) for key in ("name", "secretId")]
        if resource["type"] == "gcp:serviceaccount/account:Account":
            names.append(f"{inputs['accountId']}@{domain}.iam.gserviceaccount.com")
        for name in names:
            if isinstance(name, str):
                found.setdefault(name, set()).add(Plan.address(resource))
    return found


def _object_resources(plan: Plan) -> dict[str, dict[str, Any]]:
    return {
        Plan.address(r): r
        for r in plan["resources"]
        if r["type"].startswith("kubernetes:") and "kind" in r["inputs"]
    }


def named_gcp_resources(plan: Plan, obj: dict[str, Any]) -> set[str]:
    """Addresses of the GCP resources a Kubernetes object names in its spec or annotations."""
    identifiers = _gcp_identifiers(plan)
    by_address = {Plan.address(r): r for r in plan["resources"]}
    inputs = obj["inputs"]
    named = {*_strings(inputs.get("spec", {})), *_strings(inputs["metadata"].get("annotations"))}

    def in_its_region(addresses: set[str]) -> set[str]:
        """A name every region's copy has (the clusters: unique per location) names the copy
        in the object's own region."""
        own = {a for a in addresses if plan.region_of(by_address[a]) == plan.region_of(obj)}
        return own if len(addresses) > 1 and own else addresses

    return set().union(
        *(in_its_region(identifiers[value]) for value in named if value in identifiers)
    )


def _attached_to(plan: Plan, gateway: dict[str, Any]) -> list[dict[str, Any]]:
    """Objects whose GCP resources the Gateway's load balancer uses: policies on the Gateway,
    routes parented on it, and policies on the Services those routes send to."""
    name = gateway["inputs"]["metadata"]["name"]
    objects = list(_object_resources(plan).values())
    routes = [
        o
        for o in objects
        if o["inputs"]["kind"] == "HTTPRoute"
        and any(ref["name"] == name for ref in o["inputs"]["spec"]["parentRefs"])
    ]
    services = {
        ref["name"]
        for route in routes
        for rule in route["inputs"]["spec"]["rules"]
        for ref in rule.get("backendRefs", [])
    }

    def targets(obj: dict[str, Any]) -> bool:
        target = obj["inputs"].get("spec", {}).get("targetRef", {})
        if target.get("kind") == "Gateway":
            return target.get("group") == GATEWAY_API_GROUP and target.get("name") == name
        return target.get("kind") == "Service" and target.get("name") in services

    return routes + [o for o in objects if targets(o)]


def missing_name_dependencies(plan: Plan) -> dict[str, set[str]]:
    """Object -> the GCP resources it (or, for a Gateway, what is attached to it) names but does
    not wait for."""
    missing: dict[str, set[str]] = {}
    for address, obj in _object_resources(plan).items():
        named = named_gcp_resources(plan, obj)
        if obj["inputs"]["kind"] == "Gateway":
            named |= set().union(*(named_gcp_resources(plan, o) for o in _attached_to(plan, obj)))
        if gap := named - plan.waits_for(obj):
            missing[address] = gap
    return missing


def test_every_named_gcp_resource_is_a_dependency(plan: Plan) -> None:
    assert missing_name_dependencies(plan) == {}


def test_the_gateway_outlives_its_ssl_and_armor_policies(plan: Plan) -> None:
    """Destroy deletes the Gateway (its load balancer) before the policies it uses."""
    gateway = plan.one("kubernetes:gateway.networking.k8s.io/v1:Gateway")
    waits_for = plan.waits_for(gateway)
    for resource_type in (
        "gcp:compute/sSLPolicy:SSLPolicy",
        "gcp:compute/securityPolicy:SecurityPolicy",
        "gcp:certificatemanager/certificateMap:CertificateMap",
        "gcp:compute/globalAddress:GlobalAddress",
    ):
        assert {Plan.address(r) for r in plan.of_type(resource_type)} <= waits_for, resource_type


@pytest.mark.parametrize(
    "kind, gcp_type",
    [
        ("Gateway", "gcp:certificatemanager/certificateMap:CertificateMap"),
        ("GCPBackendPolicy", "gcp:compute/securityPolicy:SecurityPolicy"),
    ],
)
def test_planted_missing_dependency_is_caught(
    plans: dict[str, Plan], kind: str, gcp_type: str
) -> None:
    """Planted: the object no longer waits for the resource it names (nor for anything that
    does), as if the program passed the name as a plain string."""
    plan = Plan(copy.deepcopy(dict(plans["dev"])))
    target = Plan.address(plan.one(gcp_type))
    (obj,) = [o for o in _object_resources(plan).values() if o["inputs"]["kind"] == kind]
    assert target in plan.waits_for(obj)
    obj["dependencies"] = [
        d
        for d in obj["dependencies"]
        if d != target and target not in plan.waits_for({"dependencies": [d]})
    ]
    assert target in missing_name_dependencies(plan)[Plan.address(obj)]
