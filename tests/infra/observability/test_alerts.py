"""Alert policies, notification channels, the public uptime check and SLOs with burn-rate
alerts, for both stacks; thresholds and targets come from each stack's config."""

from __future__ import annotations

import re

import promql_parser
import pytest

from infra.observability.alerts import BURN_RATE_WINDOWS, RUNBOOKS
from tests.infra.observability_queries import ALERT_POLICY, SLO
from tests.infra.plans import stack_config

CHANNEL = "gcp:monitoring/notificationChannel:NotificationChannel"
SYMPTOM_ALERTS = {
    "error-ratio": "CRITICAL",
    "p99-latency": "WARNING",
    "crash-looping": "CRITICAL",
    "autoscaler-at-max": "WARNING",
    "armor-denials": "WARNING",
    "uptime": "CRITICAL",
}
BURN_ALERTS = {
    f"slo-{slo}-{speed}-burn": severity
    for slo in ("availability", "latency")
    for speed, severity in (("fast", "CRITICAL"), ("slow", "WARNING"))
}


def _policies(plan: dict) -> dict[str, dict]:
    """Policies by their key (logical name without the component prefix)."""
    return {p["name"].removeprefix("moderation-"): p["inputs"] for p in plan.of_type(ALERT_POLICY)}


def _slo_regions(plan: dict) -> list[str]:
    """The regions with SLOs of their own: every one, when there are several."""
    return plan.regions if len(plan.regions) > 1 else []


def _region_alerts(plan: dict) -> dict[str, str]:
    """With several regions, each region pages when it serves nothing while the stack serves,
    and burns its own SLOs' budgets as the stack does."""
    regions = _slo_regions(plan)
    burns = {
        f"slo-{slo}-{region}-{speed}-burn": severity
        for region in regions
        for slo in ("availability", "latency")
        for speed, severity in (("fast", "CRITICAL"), ("slow", "WARNING"))
    }
    return {**{f"region-silent-{r}": "CRITICAL" for r in regions}, **burns}


def _runbook_key(plan: dict, key: str) -> str:
    """The RUNBOOKS entry of a policy key: one per SLO and one for every region's silence."""
    key = key.removesuffix("-fast-burn").removesuffix("-slow-burn")
    for region in plan.regions:
        key = key.removesuffix(f"-{region}")
    return key


def _observability(plan: dict) -> dict:
    return stack_config(plan.stack)["moderation:observability"]


def _labels(plan: dict) -> dict[str, str]:
    config = stack_config(plan.stack)
    return {
        "environment": config["moderation:environment"],
        "app": "moderation",
        "cost-center": config["moderation:costCenter"],
    }


def test_exactly_the_documented_alerts_exist_with_their_severity(plan: dict) -> None:
    severities = {key: policy["severity"] for key, policy in _policies(plan).items()}
    assert severities == {**SYMPTOM_ALERTS, **BURN_ALERTS, **_region_alerts(plan)}


def test_every_alert_notifies_the_channels_configured_for_its_severity(plan: dict) -> None:
    channels = {c["name"].removeprefix("moderation-channel-"): c for c in plan.of_type(CHANNEL)}
    configured = _observability(plan)["notificationChannels"]
    assert set(channels) == {c["name"] for c in configured}
    for policy in _policies(plan).values():
        expected = {
            f"moderation-channel-{c['name']}-id"
            for c in configured
            if policy["severity"] in c.get("severities", ["CRITICAL", "WARNING"])
        }
        assert expected, f"{policy['displayName']} would notify nobody"
        assert set(policy["notificationChannels"]) == expected


def test_every_alert_carries_its_runbook_and_the_stack_labels(plan: dict) -> None:
    for key, policy in _policies(plan).items():
        runbook = RUNBOOKS[_runbook_key(plan, key)]
        assert policy["documentation"] == {
            "content": runbook,
            "mimeType": "text/markdown",
            "subject": policy["displayName"],
        }
        assert policy["displayName"].startswith(f"[{plan.stack}] ")
        assert policy["userLabels"] == _labels(plan)


def test_notification_channels_come_from_config(plan: dict) -> None:
    configured = {c["name"]: c for c in _observability(plan)["notificationChannels"]}
    for channel in plan.of_type(CHANNEL):
        wanted = configured[channel["name"].removeprefix("moderation-channel-")]
        assert channel["inputs"]["type"] == "email"
        assert channel["inputs"]["labels"] == {"email_address": wanted["emailAddress"]}
        assert channel["inputs"]["userLabels"] == _labels(plan)


def _promql(policy: dict) -> str:
    (condition,) = policy["conditions"]
    query = condition["conditionPrometheusQueryLanguage"]["query"]
    promql_parser.parse(query)  # raises on a syntax error
    return query


def test_promql_alerts_use_the_stack_thresholds(plan: dict) -> None:
    thresholds = _observability(plan)["alerts"]
    policies = _policies(plan)
    error_ratio = _promql(policies["error-ratio"])
    assert error_ratio.endswith(f"> {thresholds['errorRatio']}")
    assert 'status_code=~"5.."' in error_ratio
    latency = _promql(policies["p99-latency"])
    assert latency.startswith("histogram_quantile(0.99, ")
    assert latency.endswith(f"> {float(thresholds['p99LatencySeconds'])}")
    at_max = policies["autoscaler-at-max"]["conditions"][0]["conditionPrometheusQueryLanguage"]
    assert at_max["duration"] == f"{thresholds.get('autoscalerAtMaxMinutes', 15) * 60}s"
    assert " >= " in _promql(policies["autoscaler-at-max"])
    config = stack_config(plan.stack)
    for key in ("error-ratio", "p99-latency", "autoscaler-at-max"):
        query = _promql(policies[key])
        assert f'cluster="{config["moderation:cluster"].get("name", "moderation")}"' in query
        assert 'namespace="moderation"' in query


def _threshold(policy: dict) -> dict:
    (condition,) = policy["conditions"]
    return condition["conditionThreshold"]


def test_crash_loop_and_armor_alerts_use_the_stack_thresholds(plan: dict) -> None:
    thresholds = _observability(plan)["alerts"]
    policies = _policies(plan)
    restarts = _threshold(policies["crash-looping"])
    assert 'metric.type="kubernetes.io/container/restart_count"' in restarts["filter"]
    assert 'resource.label.namespace_name="moderation"' in restarts["filter"]
    assert restarts["thresholdValue"] == thresholds.get("containerRestartsPerTenMinutes", 3)
    assert restarts["aggregations"][0]["perSeriesAligner"] == "ALIGN_DELTA"
    denials = _threshold(policies["armor-denials"])
    assert "logging.googleapis.com/user/moderation_armor_denied_requests" in denials["filter"]
    assert denials["thresholdValue"] == thresholds["armorDenialsPerSecond"]
    assert denials["aggregations"][0]["perSeriesAligner"] == "ALIGN_RATE"


def test_uptime_check_calls_public_readyz_over_verified_https(plan: dict) -> None:
    check = plan.one("gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig")["inputs"]
    host = stack_config(plan.stack)["moderation:edge"]["domains"][0]
    http = check["httpCheck"]
    assert (http["path"], http["port"], http["useSsl"], http["validateSsl"]) == (
        "/readyz",
        443,
        True,
        True,
    )
    assert http["acceptedResponseStatusCodes"] == [{"statusClass": "STATUS_CLASS_2XX"}]
    assert check["monitoredResource"] == {
        "type": "uptime_url",
        "labels": {"project_id": stack_config(plan.stack)["gcp:project"], "host": host},
    }
    alert = _threshold(_policies(plan)["uptime"])
    assert f'resource.label.host="{host}"' in alert["filter"]
    assert "uptime_check/check_passed" in alert["filter"]


def test_slos_have_the_stack_targets_on_one_custom_service(plan: dict) -> None:
    targets = _observability(plan)["slo"]
    service = plan.one("gcp:monitoring/customService:CustomService")["inputs"]
    slos = {s["inputs"]["sloId"]: s["inputs"] for s in plan.of_type(SLO)}
    suffixes = ["", *(f"-{region}" for region in _slo_regions(plan))]
    assert set(slos) == {
        f"{sli}{suffix}" for sli in ("availability", "latency") for suffix in suffixes
    }
    for suffix in suffixes:  # the stack's, then each region's
        assert slos[f"availability{suffix}"]["goal"] == targets["availabilityGoal"]
        assert slos[f"latency{suffix}"]["goal"] == targets["latencyGoal"]
        cut = slos[f"latency{suffix}"]["requestBasedSli"]["distributionCut"]
        assert cut["range"]["max"] == targets["latencyThresholdSeconds"]
        ratio = slos[f"availability{suffix}"]["requestBasedSli"]["goodTotalRatio"]
        assert ratio["badServiceFilter"].startswith(ratio["totalServiceFilter"])
        assert 'status_code=monitoring.regex.full_match("5..")' in ratio["badServiceFilter"]
    for slo in slos.values():
        assert slo["service"] == service["serviceId"]
        assert slo["rollingPeriodDays"] == targets.get("rollingPeriodDays", 28)


def test_prod_promises_more_than_dev(plans: dict) -> None:
    dev, prod = (
        {s["inputs"]["sloId"]: s["inputs"]["goal"] for s in plans[stack].of_type(SLO)}
        for stack in ("dev", "prod")
    )
    assert all(prod[key] > dev[key] for key in dev)


@pytest.mark.parametrize("slo_id", ["availability", "latency"])
def test_burn_rate_alerts_watch_a_long_and_a_short_window_of_an_existing_slo(
    plan: dict, slo_id: str
) -> None:
    """The stack's SLO and, with several regions, each region's."""
    for key in [slo_id, *(f"{slo_id}-{region}" for region in _slo_regions(plan))]:
        _check_burn_rate_alerts(plan, key)


def _check_burn_rate_alerts(plan: dict, slo_id: str) -> None:
    project = stack_config(plan.stack)["gcp:project"]
    service = plan.one("gcp:monitoring/customService:CustomService")["inputs"]["serviceId"]
    assert any(s["inputs"]["sloId"] == slo_id for s in plan.of_type(SLO))
    policies = _policies(plan)
    for (severity, long_window, short_window, rate), speed in zip(
        BURN_RATE_WINDOWS, ("fast", "slow"), strict=True
    ):
        policy = policies[f"slo-{slo_id}-{speed}-burn"]
        assert policy["combiner"] == "AND"
        assert policy["severity"] == severity
        windows = []
        for condition in policy["conditions"]:
            threshold = condition["conditionThreshold"]
            match = re.fullmatch(
                r'select_slo_burn_rate\("([^"]+)", "(\d+s)"\)', threshold["filter"]
            )
            assert match, threshold["filter"]
            assert match.group(1) == (
                f"projects/{project}/services/{service}/serviceLevelObjectives/{slo_id}"
            )
            assert (threshold["comparison"], threshold["thresholdValue"]) == ("COMPARISON_GT", rate)
            windows.append(match.group(2))
        assert windows == [long_window, short_window]


def test_a_page_only_channel_receives_critical_alerts_only(plan_variant) -> None:
    def add_pager(config: dict) -> None:
        config["moderation:observability"]["notificationChannels"].append(
            {"name": "oncall", "emailAddress": "oncall@example.com", "severities": ["CRITICAL"]}
        )

    variant = plan_variant("dev", add_pager)
    policies = _policies(variant)
    assert {p["severity"] for p in policies.values()} == {"CRITICAL", "WARNING"}
    for policy in policies.values():
        routed = "moderation-channel-oncall-id" in policy["notificationChannels"]
        assert routed is (policy["severity"] == "CRITICAL")


def test_uptime_check_path_is_routed_over_https_by_the_gateway(plan: dict) -> None:
    """The check must reach a pod's /readyz, not the gateway's 404 or the HTTP redirect."""
    check = plan.one("gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig")["inputs"]
    host = check["monitoredResource"]["labels"]["host"]
    routed = [
        rule
        for route in plan.of_type("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute")
        if host in route["inputs"]["spec"]["hostnames"]
        and any(p.get("sectionName") == "https" for p in route["inputs"]["spec"]["parentRefs"])
        for rule in route["inputs"]["spec"]["rules"]
        if rule.get("backendRefs")
        and any(
            match["path"]["value"] == check["httpCheck"]["path"]
            and match.get("method", "GET") == check["httpCheck"]["requestMethod"]
            for match in rule.get("matches", [])
        )
    ]
    assert routed
