"""The policy pack (`policy/`): both committed stacks pass every policy, and each policy reports
a deliberately broken copy of a real resource from the plan. Validation goes through the pack's
own `ResourceValidationPolicy` objects, called as the Pulumi policy SDK calls them; one test
serves the pack over gRPC exactly as `pulumi preview --policy-pack policy` starts it."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime import proto
from pulumi.runtime.proto import analyzer_pb2_grpc
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from policy.rules import EXEMPT_NAMESPACES_KEY, policies
from tests.infra.plans import ROOT, Plan

POLICIES = {policy.name: policy for policy in policies()}
CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
REGIONAL_TYPES = frozenset({CLUSTER, NODE_POOL, DEPLOYMENT})
"""Declared once per serving region; every other type the breakages use is one per stack."""


def _violations(
    policy: ResourceValidationPolicy,
    resource: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
) -> list[str]:
    """What `policy` reports for one plan resource, called as the policy SDK's analyzer calls it."""
    reported: list[str] = []
    args = ResourceValidationArgs(
        resource_type=resource["type"],
        props=resource["inputs"],
        urn=f"urn:pulumi:test::moderation::{resource['type']}::{resource['name']}",
        name=resource["name"],
        opts=PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), []),
        provider=None,
        config=config,
    )
    policy.validate(args, lambda message, _urn: reported.append(message))
    return reported


def _broken(
    resource: Mapping[str, Any], change: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """A deep copy of a plan resource with `change` applied to its inputs."""
    broken = copy.deepcopy(dict(resource))
    change(broken["inputs"])
    return broken


def test_every_policy_is_mandatory() -> None:
    assert {policy.enforcement_level.value for policy in POLICIES.values()} == {"mandatory"}


def test_committed_stacks_pass_every_policy(plan: Plan) -> None:
    failures = [
        f"{name} on {resource['type']} {resource['name']}: {message}"
        for resource in plan["resources"]
        for name, policy in POLICIES.items()
        for message in _violations(policy, resource)
    ]
    assert failures == []


def _bento_container(inputs: dict[str, Any]) -> dict[str, Any]:
    return inputs["spec"]["template"]["spec"]["containers"][0]


def _set_master_network_to_internet(inputs: dict[str, Any]) -> None:
    inputs["masterAuthorizedNetworksConfig"]["cidrBlocks"].append(
        {"cidrBlock": "0.0.0.0/0", "displayName": "anywhere"}
    )


BREAKAGES: dict[str, tuple[str, str | None, Callable[[dict[str, Any]], None], str]] = {
    # policy: (resource type, logical name or None for the only one, change, expected message)
    "gke-private-nodes": (
        CLUSTER,
        None,
        lambda inputs: inputs["privateClusterConfig"].update(enablePrivateNodes=False),
        "enablePrivateNodes must be true",
    ),
    "gke-master-authorized-networks": (
        CLUSTER,
        None,
        _set_master_network_to_internet,
        "0.0.0.0/0 opens the control plane to the internet",
    ),
    "gke-workload-identity": (
        NODE_POOL,
        "moderation-model",
        lambda inputs: inputs["nodeConfig"]["workloadMetadataConfig"].update(mode="GCE_METADATA"),
        "workloadMetadataConfig.mode must be GKE_METADATA",
    ),
    "gke-shielded-nodes": (
        NODE_POOL,
        "moderation-system",
        lambda inputs: inputs["nodeConfig"]["shieldedInstanceConfig"].update(
            enableSecureBoot=False
        ),
        "enableSecureBoot must be true",
    ),
    "gke-binary-authorization": (
        CLUSTER,
        None,
        lambda inputs: inputs["binaryAuthorization"].update(evaluationMode="DISABLED"),
        "evaluationMode is DISABLED",
    ),
    "vulnerability-scanning": (
        "gcp:artifactregistry/repository:Repository",
        None,
        lambda inputs: inputs["vulnerabilityScanningConfig"].update(enablementConfig="DISABLED"),
        "enablementConfig is DISABLED",
    ),
    "edge-tls-1-2-minimum": (
        "gcp:compute/sSLPolicy:SSLPolicy",
        None,
        lambda inputs: inputs.pop("minTlsVersion"),
        "minTlsVersion is unset (TLS_1_0)",
    ),
    "containers-non-root-read-only": (
        DEPLOYMENT,
        "moderation-stable",
        lambda inputs: _bento_container(inputs)["securityContext"].update(
            readOnlyRootFilesystem=False
        ),
        "container bento: readOnlyRootFilesystem must be true",
    ),
    "images-by-digest": (
        DEPLOYMENT,
        "moderation-stable",
        lambda inputs: _bento_container(inputs).update(
            image=_bento_container(inputs)["image"].split("@")[0] + ":latest"
        ),
        "is not pinned by digest",
    ),
}


def test_every_policy_has_a_breakage() -> None:
    assert set(BREAKAGES) == set(POLICIES)


def _copies(plan: Plan, resource_type: str, name: str | None) -> dict[str, dict[str, Any]]:
    """Each region's copy of a regional resource, or the stack's one copy of any other."""
    if resource_type in REGIONAL_TYPES:
        return plan.each_region(resource_type, name)
    return {"stack": plan.one(resource_type, name)}


@pytest.mark.parametrize("policy_name", sorted(BREAKAGES))
def test_a_broken_resource_is_reported_by_its_policy(plan: Plan, policy_name: str) -> None:
    """Broken in any one region, the copy is reported: no region's resource escapes."""
    resource_type, name, change, expected = BREAKAGES[policy_name]
    for where, resource in _copies(plan, resource_type, name).items():
        broken = _broken(resource, change)
        reported = {name: _violations(policy, broken) for name, policy in POLICIES.items()}
        assert len(reported[policy_name]) == 1, where
        assert expected in reported[policy_name][0], where
        assert {name for name, messages in reported.items() if messages} == {policy_name}, where


def test_root_pod_is_reported_even_when_only_the_pod_level_allows_it(plan: Plan) -> None:
    def run_as_root(inputs: dict[str, Any]) -> None:
        inputs["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] = False
        _bento_container(inputs)["securityContext"].pop("runAsNonRoot")

    for region, deployment in plan.each_region(DEPLOYMENT, "moderation-stable").items():
        broken = _broken(deployment, run_as_root)
        assert _violations(POLICIES["containers-non-root-read-only"], broken) == [
            "container bento: runAsNonRoot must be true"
        ], region


def test_exempt_namespaces_are_configurable(plan: Plan) -> None:
    """The vendor's metrics adapter, published by tag only, passes images-by-digest only while
    exempt; hardened, it meets the restricted-container policy even when not exempt."""
    nothing_exempt = {EXEMPT_NAMESPACES_KEY: []}
    for region, adapter in plan.each_region(DEPLOYMENT, "metrics-adapter").items():
        assert _violations(POLICIES["images-by-digest"], adapter) == [], region
        assert _violations(POLICIES["images-by-digest"], adapter, nothing_exempt), region
        restricted = POLICIES["containers-non-root-read-only"]
        assert _violations(restricted, adapter, nothing_exempt) == [], region


def _struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


@pytest.fixture(scope="module")
def served_pack() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    """The pack as the Pulumi CLI runs it: `python -m pulumi.policy <engine> policy`,
    which prints the port of its analyzer gRPC server (the engine address is not dialled)."""
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", "policy"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(process.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_served_pack_lists_every_policy_as_mandatory(served_pack) -> None:
    info = served_pack.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == "moderation-secure-defaults"
    assert {policy.name for policy in info.policies} == set(POLICIES)
    assert {policy.enforcementLevel for policy in info.policies} == {proto.MANDATORY}


def test_served_pack_blocks_a_broken_resource_and_passes_the_plan(
    served_pack, plans: dict[str, Plan]
) -> None:
    clusters = plans["prod"].each_region(CLUSTER)

    def analyze(resource: Mapping[str, Any]) -> list[Any]:
        request = proto.AnalyzeRequest(
            type=resource["type"],
            properties=_struct(resource["inputs"]),
            urn=f"urn:pulumi:prod::moderation::{resource['type']}::{resource['name']}",
            name=resource["name"],
        )
        return list(served_pack.Analyze(request, timeout=30).diagnostics)

    for region, cluster in clusters.items():
        assert analyze(cluster) == [], region
        [diagnostic] = analyze(_broken(cluster, _set_master_network_to_internet))
        assert diagnostic.policyName == "gke-master-authorized-networks", region
        assert diagnostic.enforcementLevel == proto.MANDATORY
