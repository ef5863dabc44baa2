"""Cloud Armor security policy for the public API: deny lists, WAF signatures, rate limits.

Cloud Armor evaluates rules by priority and stops at the first rule that matches; a throttle
rule whose request conforms *allows* it, so two throttle rules can never both count the same
request. The one limit here is therefore per client IP, over all traffic: a limit that any
request carrying an `Authorization` header skipped would let a client sending a made-up key per
request through unlimited, since Armor cannot tell a real key from a made-up one. Per-key limits
belong where keys are checked, in the service. In prod an IP over its limit is banned for a
while instead of only throttled.

Armor counts a rate limit per backend service, and every release track is one: with a canary
running, a client could spend the limit once on each track. The threshold is therefore the
configured limit divided by the number of tracks, so that no client exceeds the limit in total.

Moderation inputs are untrusted text *by design*: a user asking whether
"'; DROP TABLE users; --" or "<script>alert(1)</script>" is harmful is a normal request. The
service feeds that text to a classifier and never interprets it as SQL, HTML, a path or a
command, so body-inspecting WAF signatures (sqli, xss, lfi, rfi, rce, protocol attack,
scanner detection) can only produce false positives on it. They are enforced on every request
except the body-carrying moderation call (`POST /v1/moderations`); method enforcement, which
looks only at the HTTP method, applies to everything. Signature sets for stacks this service
does not run (php, java, nodejs, log4j `cve-canary`) are left out: they add latency and false
positives and protect nothing here.

Each routed path serves one method. GKE's Gateway cannot match on the method (its class does not
support HTTPRoute method matching), so a rule here denies any other method on each path before
it reaches a pod (the service would answer 405).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.config import ArmorConfig, RateLimitConfig
from infra.edge.gateway import ROUTED_OPERATIONS

DEFAULT_RULE_PRIORITY = 2147483647
FREE_TEXT_ENDPOINTS: tuple[str, ...] = ("/v1/moderations",)
BODY_INSPECTING_WAF_RULE_SETS: tuple[str, ...] = (
    "sqli-v33-stable",
    "xss-v33-stable",
    "lfi-v33-stable",
    "rfi-v33-stable",
    "rce-v33-stable",
    "protocolattack-v33-stable",
    "scannerdetection-v33-stable",
)
METHOD_ENFORCEMENT_RULE_SET = "methodenforcement-v33-stable"
# Lowest sensitivity: only the high-confidence signatures of each set.
WAF_SENSITIVITY = 1
# Cloud Armor accepts at most this many IP ranges per rule and this many sub-expressions per
# custom expression.
MAX_RANGES_PER_RULE = 10
MAX_SUBEXPRESSIONS = 5


@dataclass(frozen=True)
class ArmorPolicyArgs:
    """The stack's `edge.armor` section (limit, ban, deny lists, adaptive protection), and what
    the program names and counts."""

    config: ArmorConfig
    policy_name: str
    labels: Mapping[str, str]
    # Release tracks (backend services) the policy is attached to: each counts the limit anew.
    backends: int = 1


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _deny_list_rules(args: ArmorPolicyArgs) -> list[gcp.compute.SecurityPolicyRuleArgs]:
    rules = [
        gcp.compute.SecurityPolicyRuleArgs(
            priority=1000 + index,
            action="deny(403)",
            description="Configured IP deny list",
            match=gcp.compute.SecurityPolicyRuleMatchArgs(
                versioned_expr="SRC_IPS_V1",
                config=gcp.compute.SecurityPolicyRuleMatchConfigArgs(src_ip_ranges=list(ranges)),
            ),
        )
        for index, ranges in enumerate(_chunks(args.config.deny_ip_ranges, MAX_RANGES_PER_RULE))
    ]
    rules += [
        gcp.compute.SecurityPolicyRuleArgs(
            priority=1100 + index,
            action="deny(403)",
            description="Configured region deny list",
            match=gcp.compute.SecurityPolicyRuleMatchArgs(
                expr=gcp.compute.SecurityPolicyRuleMatchExprArgs(
                    expression=" || ".join(f"origin.region_code == '{code}'" for code in codes)
                )
            ),
        )
        for index, codes in enumerate(_chunks(args.config.deny_region_codes, MAX_SUBEXPRESSIONS))
    ]
    return rules


def _waf_expression(rule_set: str) -> str:
    return f"evaluatePreconfiguredWaf('{rule_set}', {{'sensitivity': {WAF_SENSITIVITY}}})"


def _is_free_text_call() -> str:
    paths = " || ".join(f"request.path == '{path}'" for path in FREE_TEXT_ENDPOINTS)
    return f"request.method == 'POST' && ({paths})"


def _method_rules() -> list[gcp.compute.SecurityPolicyRuleArgs]:
    """Per method, one rule: its paths with any other method are denied."""
    paths_by_method: dict[str, list[str]] = {}
    for path, method in ROUTED_OPERATIONS.items():
        paths_by_method.setdefault(method, []).append(path)
    return [
        gcp.compute.SecurityPolicyRuleArgs(
            priority=1900 + index,
            action="deny(403)",
            description=f"Only {method} on " + ", ".join(paths),
            match=gcp.compute.SecurityPolicyRuleMatchArgs(
                expr=gcp.compute.SecurityPolicyRuleMatchExprArgs(
                    expression="("
                    + " || ".join(f"request.path == '{path}'" for path in paths)
                    + f") && request.method != '{method}'"
                )
            ),
        )
        for index, (method, paths) in enumerate(sorted(paths_by_method.items()))
    ]


def _waf_rules() -> list[gcp.compute.SecurityPolicyRuleArgs]:
    rules = [
        gcp.compute.SecurityPolicyRuleArgs(
            priority=2000,
            action="deny(403)",
            description=f"WAF {METHOD_ENFORCEMENT_RULE_SET}",
            match=gcp.compute.SecurityPolicyRuleMatchArgs(
                expr=gcp.compute.SecurityPolicyRuleMatchExprArgs(
                    expression=_waf_expression(METHOD_ENFORCEMENT_RULE_SET)
                )
            ),
        )
    ]
    rules += [
        gcp.compute.SecurityPolicyRuleArgs(
            priority=2001 + index,
            action="deny(403)",
            description=f"WAF {rule_set}, not on moderation input bodies",
            match=gcp.compute.SecurityPolicyRuleMatchArgs(
                expr=gcp.compute.SecurityPolicyRuleMatchExprArgs(
                    expression=f"!({_is_free_text_call()}) && {_waf_expression(rule_set)}"
                )
            ),
        )
        for index, rule_set in enumerate(BODY_INSPECTING_WAF_RULE_SETS)
    ]
    return rules


def per_backend_count(limit: RateLimitConfig, backends: int) -> int:
    """The threshold each backend counts, so that all tracks together stay within `limit`."""
    return max(1, limit.count // backends)


def _rate_limit_rules(args: ArmorPolicyArgs) -> list[gcp.compute.SecurityPolicyRuleArgs]:
    ban = args.config.ip_ban_duration_sec is not None
    per_ip = gcp.compute.SecurityPolicyRuleArgs(
        priority=3000,
        action="rate_based_ban" if ban else "throttle",
        description=("Ban" if ban else "Throttle") + " per client IP, all requests",
        match=gcp.compute.SecurityPolicyRuleMatchArgs(
            versioned_expr="SRC_IPS_V1",
            config=gcp.compute.SecurityPolicyRuleMatchConfigArgs(src_ip_ranges=["*"]),
        ),
        rate_limit_options=gcp.compute.SecurityPolicyRuleRateLimitOptionsArgs(
            conform_action="allow",
            exceed_action="deny(429)",
            enforce_on_key_configs=[
                gcp.compute.SecurityPolicyRuleRateLimitOptionsEnforceOnKeyConfigArgs(
                    enforce_on_key_type="IP"
                )
            ],
            rate_limit_threshold=gcp.compute.SecurityPolicyRuleRateLimitOptionsRateLimitThresholdArgs(
                count=per_backend_count(args.config.per_ip, args.backends),
                interval_sec=args.config.per_ip.interval_sec,
            ),
            ban_duration_sec=args.config.ip_ban_duration_sec,
        ),
    )
    return [per_ip]


def _default_rule() -> gcp.compute.SecurityPolicyRuleArgs:
    return gcp.compute.SecurityPolicyRuleArgs(
        priority=DEFAULT_RULE_PRIORITY,
        action="allow",
        description="Default: allow what no rule above stopped",
        match=gcp.compute.SecurityPolicyRuleMatchArgs(
            versioned_expr="SRC_IPS_V1",
            config=gcp.compute.SecurityPolicyRuleMatchConfigArgs(src_ip_ranges=["*"]),
        ),
    )


def security_policy_rules(args: ArmorPolicyArgs) -> list[gcp.compute.SecurityPolicyRuleArgs]:
    """All rules in evaluation order: deny lists, methods, WAF, rate limits, default allow."""
    return [
        *_deny_list_rules(args),
        *_method_rules(),
        *_waf_rules(),
        *_rate_limit_rules(args),
        _default_rule(),
    ]


class ArmorPolicy(pulumi.ComponentResource):
    """The Cloud Armor policy that the Gateway's backend policies attach."""

    policy: gcp.compute.SecurityPolicy
    policy_name: pulumi.Output[str]
    self_link: pulumi.Output[str]

    def __init__(
        self, name: str, args: ArmorPolicyArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("moderation:edge:ArmorPolicy", name, None, opts)
        adaptive = (
            gcp.compute.SecurityPolicyAdaptiveProtectionConfigArgs(
                layer7_ddos_defense_config=gcp.compute.SecurityPolicyAdaptiveProtectionConfigLayer7DdosDefenseConfigArgs(
                    enable=True, rule_visibility="STANDARD"
                )
            )
            if args.config.adaptive_protection
            else None
        )
        policy = gcp.compute.SecurityPolicy(
            name,
            name=args.policy_name,
            description="Moderation API edge: deny lists, methods, WAF, per-IP rate limit",
            type="CLOUD_ARMOR",
            labels=dict(args.labels),
            adaptive_protection_config=adaptive,
            rules=security_policy_rules(args),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.policy = policy
        self.policy_name = policy.name
        self.self_link = policy.self_link
        self.register_outputs({"policy_name": self.policy_name, "self_link": self.self_link})
