"""What GKE supports: every field the kit sets on a Gateway or an HTTPRoute maps to its Gateway
API feature (tests/infra/edge/gateway_features.py), and each feature must be one that GKE's own
conformance report for the `gke-l7-global-external-managed` class claims (a copy, with its
source and date, in tests/infra/edge/data/). The CRD schemas accept fields such as `method` that
this class's controller does not program, so only the report can tell."""

from __future__ import annotations

import copy
from typing import Any

from infra.edge.gateway import GATEWAY_CLASS
from tests.infra.edge.gateway_features import (
    CORE,
    REPORT_GATEWAY_CLASS,
    UNMAPPED,
    gateway_features,
    httproute_features,
    report,
    unsupported,
)
from tests.infra.plans import Plan


def _services(plan: Plan) -> dict[str, dict[str, Any]]:
    return {
        obj["metadata"]["name"]: obj["spec"]
        for obj in plan.kubernetes_objects()
        if obj["kind"] == "Service"
    }


def _features(plan: Plan) -> dict[str, str]:
    """Feature of every field the plan's Gateways and HTTPRoutes set, by `<kind>/<name>:path`."""
    used: dict[str, str] = {}
    for obj in plan.kubernetes_objects():
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] == "Gateway":
            found = gateway_features(obj["spec"])
        elif obj["kind"] == "HTTPRoute":
            found = httproute_features(obj["spec"], _services(plan))
        else:
            continue
        used |= {f"{where}:{path}": feature for path, feature in found.items()}
    return used


def test_the_report_is_for_the_class_the_gateway_uses() -> None:
    conformance = report()
    assert conformance["implementation"]["organization"] == "GKE"
    assert conformance["kind"] == "ConformanceReport"
    assert GATEWAY_CLASS == REPORT_GATEWAY_CLASS


def test_every_gateway_field_maps_to_a_feature(plan: Plan) -> None:
    used = _features(plan)
    assert any(key.startswith("HTTPRoute/") for key in used)
    assert {path for path, feature in used.items() if feature == UNMAPPED} == set()


def test_every_feature_used_is_one_gke_supports(plan: Plan) -> None:
    assert unsupported(_features(plan), report()) == {}


def _api_route(plan: Plan) -> dict[str, Any]:
    return copy.deepcopy(plan.kubernetes_object("HTTPRoute", "moderation-api"))


def test_planted_method_match_is_caught(plans: dict[str, Plan]) -> None:
    route = _api_route(plans["dev"])
    route["spec"]["rules"][0]["matches"][0]["method"] = "POST"
    found = unsupported(httproute_features(route["spec"]), report())
    assert found["rules[].matches[].method"] == "HTTPRouteMethodMatching"


def test_planted_timeout_rewrite_and_query_match_are_caught(plans: dict[str, Plan]) -> None:
    route = _api_route(plans["dev"])
    rule = route["spec"]["rules"][0]
    rule["timeouts"] = {"request": "30s"}
    rule["matches"][0]["queryParams"] = [{"name": "v", "value": "1"}]
    rule["filters"].append(
        {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch"}}}
    )
    found = set(unsupported(httproute_features(route["spec"]), report()).values())
    assert found >= {
        "HTTPRouteRequestTimeout",
        "HTTPRouteQueryParamMatching",
        "HTTPRoutePathRewrite",
    }


def test_planted_unknown_field_is_unmapped_not_assumed_core(plans: dict[str, Plan]) -> None:
    route = _api_route(plans["dev"])
    route["spec"]["rules"][0]["sessionPersistence"] = {"type": "Cookie"}
    found = unsupported(httproute_features(route["spec"]), report())
    assert found["rules[].sessionPersistence.type"] == UNMAPPED


def test_planted_static_ip_address_is_caught(plans: dict[str, Plan]) -> None:
    gateway = copy.deepcopy(plans["dev"].kubernetes_object("Gateway", "moderation"))
    gateway["spec"]["addresses"] = [{"type": "IPAddress", "value": "203.0.113.20"}]
    assert set(unsupported(gateway_features(gateway["spec"]), report()).values()) == {
        "GatewayStaticAddresses"
    }
    assert gateway_features({"gatewayClassName": GATEWAY_CLASS}) == {"gatewayClassName": CORE}
