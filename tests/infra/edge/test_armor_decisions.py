"""Which Cloud Armor rule decides a request, evaluated on the planned policy.

Cloud Armor applies the first matching rule by priority and evaluates no other. Rule expressions
are CEL (Cloud Armor's rules language is a subset of it) and run here in cel-python; the one
thing modelled is the WAF signature engine: `evaluatePreconfiguredWaf(set, ...)` is true when the
test request is declared to carry an attack of that set. So these tests pin the policy's logic:
which requests reach which rule. Whether Google's signatures fire on a given text is theirs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import celpy
import pytest
from celpy import celtypes

from infra.config import ArmorConfig, RateLimitConfig
from infra.edge.armor import ArmorPolicyArgs, security_policy_rules
from infra.edge.gateway import ROUTED_OPERATIONS
from tests.infra.edge.test_armor import MODERATION_BODY_GUARD
from tests.infra.plans import Plan


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    ip: str = "192.0.2.10"
    region: str = "FR"
    # The WAF rule sets whose signatures this request carries.
    attacks: frozenset[str] = frozenset()


def _matches_ip(ranges: Iterable[str], ip: str) -> bool:
    return any(r == "*" or ipaddress.ip_address(ip) in ipaddress.ip_network(r) for r in ranges)


def _expression_matches(expression: str, request: Request) -> bool:
    def evaluate_waf(rule_set: celtypes.StringType, _options: Any) -> celtypes.BoolType:
        return celtypes.BoolType(str(rule_set) in request.attacks)

    environment = celpy.Environment()
    program = environment.program(
        environment.compile(expression), functions={"evaluatePreconfiguredWaf": evaluate_waf}
    )
    activation = {
        "request": celpy.json_to_cel(
            {"method": request.method, "path": request.path, "headers": request.headers}
        ),
        "origin": celpy.json_to_cel({"ip": request.ip, "region_code": request.region}),
    }
    return bool(program.evaluate(activation))


def deciding_rule(rules: list[dict[str, Any]], request: Request) -> dict[str, Any]:
    """The rule Cloud Armor applies to `request`: the first match by priority."""
    for rule in sorted(rules, key=lambda rule: rule["priority"]):
        match = rule["match"]
        if "expr" in match:
            matched = _expression_matches(match["expr"]["expression"], request)
        else:
            assert match["versionedExpr"] == "SRC_IPS_V1"
            matched = _matches_ip(match["config"]["srcIpRanges"], request.ip)
        if matched:
            return rule
    raise AssertionError("no rule matched: the policy has no default rule")


def _planned_rules(plan: Plan) -> list[dict[str, Any]]:
    return plan.one("gcp:compute/securityPolicy:SecurityPolicy")["inputs"]["rules"]


def _key_type(rule: dict[str, Any]) -> str | None:
    keys = rule.get("rateLimitOptions", {}).get("enforceOnKeyConfigs", [{}])
    return keys[0].get("enforceOnKeyType")


KEY = {"authorization": "Bearer test-key", "content-type": "application/json"}
BODY_ATTACKS = frozenset({"sqli-v33-stable", "xss-v33-stable", "rce-v33-stable"})


def test_a_moderation_body_that_looks_like_an_attack_is_only_rate_limited(plan: Plan) -> None:
    """E.g. {"input": "'; DROP TABLE users; -- <script>alert(1)</script>"}: a normal request."""
    rules = _planned_rules(plan)
    with_key = deciding_rule(rules, Request("POST", "/v1/moderations", KEY, attacks=BODY_ATTACKS))
    without_key = deciding_rule(rules, Request("POST", "/v1/moderations", attacks=BODY_ATTACKS))
    assert _key_type(with_key) == _key_type(without_key) == "IP"


def test_the_same_attack_anywhere_else_is_denied(plan: Plan) -> None:
    rules = _planned_rules(plan)
    for request in (
        Request("GET", "/v1/models", KEY, attacks=frozenset({"sqli-v33-stable"})),
        Request("POST", "/v1/moderations/../models", KEY, attacks=frozenset({"lfi-v33-stable"})),
        Request(
            "GET",
            "/v1/models",
            {"user-agent": "sqlmap"},
            attacks=frozenset({"scannerdetection-v33-stable"}),
        ),
    ):
        assert deciding_rule(rules, request)["action"] == "deny(403)", request


def test_unexpected_methods_are_denied_even_on_the_moderation_path(plan: Plan) -> None:
    request = Request(
        "TRACE", "/v1/moderations", KEY, attacks=frozenset({"methodenforcement-v33-stable"})
    )
    assert deciding_rule(_planned_rules(plan), request)["action"] == "deny(403)"


def test_every_clean_request_is_counted_per_ip_whatever_key_it_shows(plan: Plan) -> None:
    """A client inventing a key per request still lands in its IP's bucket."""
    rules = _planned_rules(plan)
    for headers in ({}, KEY, {"authorization": "Bearer made-up-1"}, {"authorization": "x"}):
        for path, method in ROUTED_OPERATIONS.items():
            assert _key_type(deciding_rule(rules, Request(method, path, headers))) == "IP"


def _rules_with(**lists: list[str]) -> list[dict[str, Any]]:
    """The policy for deny lists the committed stacks leave empty, in the plan's camelCase."""
    config = ArmorConfig(per_ip=RateLimitConfig(count=10, interval_sec=60), **lists)
    args = ArmorPolicyArgs(config=config, policy_name="test", labels={})

    def to_plan_form(rule: Any) -> dict[str, Any]:
        match = rule.match
        if match.expr is not None:
            return {
                "priority": rule.priority,
                "action": rule.action,
                "match": {"expr": {"expression": match.expr.expression}},
            }
        return {
            "priority": rule.priority,
            "action": rule.action,
            "match": {
                "versionedExpr": match.versioned_expr,
                "config": {"srcIpRanges": match.config.src_ip_ranges},
            },
        }

    return [to_plan_form(rule) for rule in security_policy_rules(args)]


@pytest.mark.parametrize(
    ("lists", "request_from", "denied"),
    [
        ({"deny_ip_ranges": ["198.51.100.0/24"]}, {"ip": "198.51.100.7"}, True),
        ({"deny_ip_ranges": ["198.51.100.0/24"]}, {"ip": "198.51.101.7"}, False),
        ({"deny_region_codes": ["AA", "BB", "CC", "DD", "EE", "FF"]}, {"region": "FF"}, True),
        ({"deny_region_codes": ["AA"]}, {"region": "FR"}, False),
    ],
)
def test_deny_lists_stop_a_client_before_anything_else(
    lists: dict[str, list[str]], request_from: dict[str, str], denied: bool
) -> None:
    request = Request("POST", "/v1/moderations", KEY, **request_from)
    assert (deciding_rule(_rules_with(**lists), request)["action"] == "deny(403)") is denied


def test_the_model_of_armor_is_not_vacuous() -> None:
    """Without its guard, the sqli rule would deny the moderation request above."""

    def unguarded(rule: dict[str, Any]) -> dict[str, Any]:
        expression = rule["match"].get("expr", {}).get("expression", "")
        if "sqli" not in expression:
            return rule
        bare = expression.removeprefix(f"{MODERATION_BODY_GUARD} && ")
        return {**rule, "match": {"expr": {"expression": bare}}}

    rules = [unguarded(rule) for rule in _rules_with()]
    request = Request("POST", "/v1/moderations", KEY, attacks=frozenset({"sqli-v33-stable"}))
    assert deciding_rule(rules, request)["action"] == "deny(403)"
