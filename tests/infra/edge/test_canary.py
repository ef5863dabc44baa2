"""Model canary: a second Deployment and a weighted split when configured, nothing otherwise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.infra.edge.test_config import CANARY
from tests.infra.plans import STACKS, Plan

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HTTP_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"


@pytest.fixture(scope="module", params=STACKS)
def canary_plan(request: pytest.FixtureRequest, plan_variant: Callable[..., Plan]) -> Plan:
    """The committed stack with a canary release taking 10% of the traffic."""

    def add_canary(config: dict[str, Any]) -> None:
        config["moderation:release"]["canary"] = CANARY

    return plan_variant(request.param, add_canary)


def _deployments(plan: Plan) -> dict[str, dict[str, Any]]:
    """The model's release tracks (other Deployments, e.g. a metrics adapter, are not)."""
    return {
        d["inputs"]["metadata"]["name"]: d["inputs"]
        for d in plan.of_type(DEPLOYMENT)
        if "moderation.dev/track" in d["inputs"]["metadata"]["labels"]
    }


def _split(plan: Plan) -> list[dict[str, int]]:
    """Service -> weight, for each rule of the route that carries traffic."""
    return [
        {backend["name"]: backend["weight"] for backend in rule["backendRefs"]}
        for route in plan.of_type(HTTP_ROUTE)
        for rule in route["inputs"]["spec"]["rules"]
        if rule.get("backendRefs")
    ]


def test_canary_runs_as_its_own_deployment_of_its_own_image(canary_plan: Plan) -> None:
    deployments = _deployments(canary_plan)
    assert set(deployments) == {"moderation-stable", "moderation-canary"}
    canary = deployments["moderation-canary"]["spec"]["template"]
    stable = deployments["moderation-stable"]["spec"]["template"]
    assert canary["spec"]["containers"][0]["image"] == CANARY["image"]
    assert canary["metadata"]["annotations"]["moderation.dev/bento"] == CANARY["bento"]
    assert stable["spec"]["containers"][0]["image"] != CANARY["image"]
    # Both tracks read the same keys: a client cannot tell which one answered.
    volumes = [
        [v for v in template["spec"]["volumes"] if "csi" in v] for template in (canary, stable)
    ]
    assert volumes[0] == volumes[1]


def test_route_splits_traffic_by_the_configured_weight(canary_plan: Plan) -> None:
    split = {"moderation-stable": 100 - CANARY["weight"], "moderation-canary": CANARY["weight"]}
    assert _split(canary_plan) and all(rule == split for rule in _split(canary_plan))


def test_canary_backend_gets_the_same_armor_logging_and_health_check(canary_plan: Plan) -> None:
    for policy_type in ("GCPBackendPolicy", "HealthCheckPolicy"):
        policies = canary_plan.of_type(f"kubernetes:networking.gke.io/v1:{policy_type}")
        by_service = {p["inputs"]["spec"]["targetRef"]["name"]: p["inputs"] for p in policies}
        assert set(by_service) == {"moderation-stable", "moderation-canary"}
        stable, canary = by_service["moderation-stable"], by_service["moderation-canary"]
        assert stable["spec"]["default"] == canary["spec"]["default"]


def test_without_a_canary_all_traffic_goes_to_stable(plan: Plan) -> None:
    assert set(_deployments(plan)) == {"moderation-stable"}
    assert all(rule == {"moderation-stable": 100} for rule in _split(plan))
    assert plan.outputs["canaryWeight"] == 0
