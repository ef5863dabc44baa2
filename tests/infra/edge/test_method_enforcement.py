"""Methods are enforced where GKE supports it. The Gateway's route cannot match on the method
(tests/infra/edge/test_gke_support.py), so Cloud Armor's `request.method` does it: each routed
path with any other method is denied before it reaches a pod."""

from __future__ import annotations

import pytest

from infra.edge.gateway import ROUTED_OPERATIONS
from tests.infra.edge.test_armor_decisions import KEY, Request, _planned_rules, deciding_rule
from tests.infra.plans import Plan

OTHER_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


@pytest.mark.parametrize(("path", "method"), sorted(ROUTED_OPERATIONS.items()))
def test_each_routed_path_is_denied_for_any_other_method(
    plan: Plan, path: str, method: str
) -> None:
    rules = _planned_rules(plan)
    for other in OTHER_METHODS:
        decision = deciding_rule(rules, Request(other, path, KEY))
        if other == method:
            assert decision["action"] != "deny(403)", (other, path)
        else:
            assert decision["action"] == "deny(403)", (other, path)
            assert "request.method" in decision["match"]["expr"]["expression"]


def test_the_route_sends_exactly_the_routed_paths(plan: Plan) -> None:
    route = plan.kubernetes_object("HTTPRoute", "moderation-api")
    paths = {match["path"]["value"] for rule in route["spec"]["rules"] for match in rule["matches"]}
    assert paths == set(ROUTED_OPERATIONS)
