"""Cloud Armor: a per-IP limit on all traffic, prod bans, deny lists, WAF off moderation bodies."""

from __future__ import annotations

from typing import Any

import pytest

from infra.config import ArmorConfig, RateLimitConfig
from infra.edge.armor import (
    DEFAULT_RULE_PRIORITY,
    MAX_RANGES_PER_RULE,
    MAX_SUBEXPRESSIONS,
    ArmorPolicyArgs,
    per_backend_count,
    security_policy_rules,
)
from tests.infra.plans import Plan, stack_config

SECURITY_POLICY = "gcp:compute/securityPolicy:SecurityPolicy"
MODERATION_BODY_GUARD = "!(request.method == 'POST' && (request.path == '/v1/moderations'))"


def _armor(plan: Plan) -> dict[str, Any]:
    return stack_config(plan.stack)["moderation:edge"]["armor"]


def _rules(plan: Plan) -> list[dict[str, Any]]:
    return plan.one(SECURITY_POLICY)["inputs"]["rules"]


def _rate_limited(plan: Plan, key_type: str) -> dict[str, Any]:
    found = [
        rule
        for rule in _rules(plan)
        if any(
            key["enforceOnKeyType"] == key_type
            for key in rule.get("rateLimitOptions", {}).get("enforceOnKeyConfigs", [])
        )
    ]
    assert len(found) == 1, f"{plan.stack}: {len(found)} rules keyed on {key_type}"
    return found[0]


def _expression(rule: dict[str, Any]) -> str:
    return rule["match"]["expr"]["expression"]


def test_the_only_rate_limit_is_per_ip_and_matches_every_request(plan: Plan) -> None:
    """Armor stops at the first matching rule: a limit keyed on anything a client chooses (its
    Authorization header) would let a made-up key per request past every other limit."""
    limited = [rule for rule in _rules(plan) if "rateLimitOptions" in rule]
    assert limited == [_rate_limited(plan, "IP")]
    assert limited[0]["match"] == {"versionedExpr": "SRC_IPS_V1", "config": {"srcIpRanges": ["*"]}}


def test_clients_are_limited_per_ip_and_banned_where_configured(plan: Plan) -> None:
    armor = _armor(plan)
    rule = _rate_limited(plan, "IP")
    options = rule["rateLimitOptions"]
    assert options["rateLimitThreshold"] == {
        "count": armor["perIp"]["count"],
        "intervalSec": armor["perIp"]["intervalSec"],
    }
    assert options["exceedAction"] == "deny(429)"
    if armor.get("ipBanDurationSec") is None:
        assert rule["action"] == "throttle"
        assert "banDurationSec" not in options
    else:
        assert rule["action"] == "rate_based_ban"
        assert options["banDurationSec"] == armor["ipBanDurationSec"]


def test_prod_bans_abusive_ips_and_runs_adaptive_protection(plans: dict[str, Plan]) -> None:
    prod = plans["prod"].one(SECURITY_POLICY)["inputs"]
    dev = plans["dev"].one(SECURITY_POLICY)["inputs"]
    assert _rate_limited(plans["prod"], "IP")["action"] == "rate_based_ban"
    assert prod["adaptiveProtectionConfig"] == {
        "layer7DdosDefenseConfig": {"enable": True, "ruleVisibility": "STANDARD"}
    }
    assert "adaptiveProtectionConfig" not in dev


def test_waf_blocks_attacks_but_never_inspects_a_moderation_body(plan: Plan) -> None:
    waf_rules = [rule for rule in _rules(plan) if "evaluatePreconfiguredWaf" in str(rule["match"])]
    rule_sets = {
        _expression(rule).split("evaluatePreconfiguredWaf('")[1].split("'")[0]: rule
        for rule in waf_rules
    }
    assert {"sqli-v33-stable", "xss-v33-stable", "methodenforcement-v33-stable"} <= set(rule_sets)
    for name, rule in rule_sets.items():
        assert rule["action"] == "deny(403)"
        assert "'sensitivity': 1" in _expression(rule)
        if name != "methodenforcement-v33-stable":  # looks at the method only, never the body
            assert _expression(rule).startswith(MODERATION_BODY_GUARD + " && ")


def test_rules_run_deny_lists_then_waf_then_limits_then_default_allow(plan: Plan) -> None:
    rules = _rules(plan)
    priorities = [rule["priority"] for rule in rules]
    assert len(set(priorities)) == len(priorities)
    by_priority = sorted(rules, key=lambda rule: rule["priority"])
    last_waf = max(i for i, r in enumerate(by_priority) if "evaluatePreconfiguredWaf" in str(r))
    first_limit = min(i for i, r in enumerate(by_priority) if "rateLimitOptions" in r)
    assert last_waf < first_limit
    default = by_priority[-1]
    assert default["priority"] == DEFAULT_RULE_PRIORITY
    assert default["action"] == "allow"
    assert default["match"]["config"]["srcIpRanges"] == ["*"]


def _args(**armor: Any) -> ArmorPolicyArgs:
    """A policy for an `edge.armor` section with a 10-a-minute limit and these settings."""
    config = ArmorConfig(per_ip=RateLimitConfig(count=10, interval_sec=60), **armor)
    return ArmorPolicyArgs(config=config, policy_name="test", labels={})


@pytest.mark.parametrize("count", [0, 1, MAX_RANGES_PER_RULE, MAX_RANGES_PER_RULE * 2 + 3])
def test_deny_listed_ranges_are_split_into_rules_armor_accepts(count: int) -> None:
    ranges = [f"198.51.100.{i}/32" for i in range(count)]
    rules = security_policy_rules(_args(deny_ip_ranges=ranges))
    deny = [r for r in rules if r.description == "Configured IP deny list"]
    assert all(len(rule.match.config.src_ip_ranges) <= MAX_RANGES_PER_RULE for rule in deny)
    assert [ip for rule in deny for ip in rule.match.config.src_ip_ranges] == ranges
    assert all(rule.action == "deny(403)" for rule in deny)


def test_deny_listed_regions_fit_the_expression_limit() -> None:
    codes = ["AA", "BB", "CC", "DD", "EE", "FF", "GG"]
    rules = security_policy_rules(_args(deny_region_codes=codes))
    expressions = [
        r.match.expr.expression for r in rules if r.description.endswith("region deny list")
    ]
    assert all(e.count("origin.region_code") <= MAX_SUBEXPRESSIONS for e in expressions)
    assert sorted(code for e in expressions for code in codes if f"'{code}'" in e) == codes


def test_a_running_canary_splits_the_per_ip_limit_between_the_tracks(plan_variant) -> None:
    """Armor counts per backend service; two tracks must not give a client twice the limit.
    A shadow only gets the load balancer's copies of requests: it takes no share."""

    def with_candidates(*tracks: str) -> Any:
        def change(config: dict[str, Any]) -> None:
            for index, track in enumerate(tracks):
                release = {"bento": f"moderation:0.{index + 2}.0"}
                config["moderation:release"][track] = (
                    {**release, "weight": 10} if track == "canary" else release
                )

        return change

    canary = plan_variant("dev", with_candidates("canary", "shadow"))
    limit = _armor(canary)["perIp"]["count"]
    threshold = _rate_limited(canary, "IP")["rateLimitOptions"]["rateLimitThreshold"]
    assert len(canary.of_type("kubernetes:apps/v1:Deployment")) >= 3
    assert threshold["count"] * 2 <= limit
    assert threshold["count"] == per_backend_count(RateLimitConfig(count=limit), 2)
