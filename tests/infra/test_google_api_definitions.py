"""Every planned GCP resource against Google's API definitions (tests/infra/google_discovery.py):
enum values the API knows and has not deprecated, no field the API deprecates."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.infra.google_discovery import API_SCHEMAS, check_resource, document
from tests.infra.plans import Plan

CLUSTER = "gcp:container/cluster:Cluster"

# Findings the program cannot act on, each with its reason. A finding listed here that the check
# no longer reports fails too, so the list stays true.
PROVIDER_OWNED = {
    (CLUSTER, "masterAuthorizedNetworksConfig: the API marks this field deprecated"): (
        "kept: the IP endpoint stays behind authorized networks (docs/deploy.md, 'Control plane "
        "access'); the API's replacement, ipEndpointsConfig.authorizedNetworksConfig, has no "
        "pulumi-gcp 10.2 input (tests/infra/test_control_plane_endpoint.py)"
    ),
    (CLUSTER, "privateClusterConfig.enablePrivateNodes: the API marks this field deprecated"): (
        "pulumi-gcp 10.2 has no cluster-level `defaultEnablePrivateNodes` input"
    ),
    (CLUSTER, "privateClusterConfig.enablePrivateEndpoint: the API marks this field deprecated"): (
        "kept with the IP endpoint (above); its replacement, "
        "ipEndpointsConfig.enablePublicEndpoint, has no pulumi-gcp 10.2 input"
    ),
    (
        CLUSTER,
        "privateClusterConfig.masterGlobalAccessConfig: the API marks this field deprecated",
    ): (
        "kept with the IP endpoint (above); its replacement, ipEndpointsConfig.globalAccess, has "
        "no pulumi-gcp 10.2 input"
    ),
}


def _findings(plan: Plan) -> set[tuple[str, str]]:
    return {
        (resource["type"], problem)
        for resource in plan["resources"]
        if resource["type"].startswith("gcp:")
        for problem in check_resource(resource).problems
    }


def test_every_planned_gcp_type_is_mapped_to_its_api(plan: Plan) -> None:
    planned = {r["type"] for r in plan["resources"] if r["type"].startswith("gcp:")}
    assert planned <= set(API_SCHEMAS), f"map these to their API: {planned - set(API_SCHEMAS)}"
    for target in filter(None, API_SCHEMAS.values()):
        assert target[1] in document(target[0])["schemas"], target


def test_planned_values_are_ones_the_api_knows_and_has_not_deprecated(plan: Plan) -> None:
    assert _findings(plan) - set(PROVIDER_OWNED) == set()


def test_every_listed_exception_is_still_reported(plans: dict[str, Plan]) -> None:
    reported = set().union(*(_findings(plan) for plan in plans.values()))
    assert set(PROVIDER_OWNED) <= reported


def test_the_check_reaches_most_of_what_the_plan_sets(plan: Plan) -> None:
    """Not vacuous: each mapped resource has fields the API knows, and enums are checked."""
    fields = enums = 0
    for resource in plan["resources"]:
        if API_SCHEMAS.get(resource["type"]) is None:
            continue
        report = check_resource(resource)
        settable = {k for k, v in resource["inputs"].items() if v is not None}
        if resource["type"] != "gcp:monitoring/dashboard:Dashboard" and len(settable) > 2:
            assert report.fields_checked >= 1, resource["type"]
        fields += report.fields_checked
        enums += report.enums_checked
    assert fields >= 300
    assert enums >= 60


def _cluster_with(plan: Plan, change: Any) -> dict[str, Any]:
    cluster = copy.deepcopy(plan.one(CLUSTER))
    change(cluster["inputs"])
    return cluster


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda inputs: inputs["releaseChannel"].update(channel="UNSPECIFIED"),
            "releaseChannel.channel: 'UNSPECIFIED' is deprecated",
        ),
        (
            lambda inputs: inputs["releaseChannel"].update(channel="WEEKLY"),
            "releaseChannel.channel: 'WEEKLY' is not one of",
        ),
        (
            lambda inputs: inputs.update(initialNodeCount=1),
            "initialNodeCount: the API marks this field deprecated",
        ),
        (
            lambda inputs: inputs["securityPostureConfig"].update(
                vulnerabilityMode="VULNERABILITY_BASIC"
            ),
            "securityPostureConfig.vulnerabilityMode: 'VULNERABILITY_BASIC' is deprecated",
        ),
        (
            lambda inputs: inputs["loggingConfig"]["enableComponents"].append("EVERYTHING"),
            "loggingConfig.componentConfig.enableComponents[2]: 'EVERYTHING' is not one of",
        ),
    ],
)
def test_a_planted_deprecated_or_unknown_value_fails(
    plans: dict[str, Plan], change: Any, problem: str
) -> None:
    planted = check_resource(_cluster_with(plans["dev"], change)).problems
    assert any(p.startswith(problem) for p in planted), planted
    assert not any(
        p.startswith(problem) for p in check_resource(plans["dev"].one(CLUSTER)).problems
    )
