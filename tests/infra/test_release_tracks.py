"""Release tracks: a shadow gets a mirrored copy of the API traffic and never answers a client; each
candidate (canary, shadow) is compared with stable by its own alerts; every series carries its
track and Bento version; and the rollout shadow -> canary -> stable, and back, is one config
change per step that leaves the other tracks' objects alone."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from infra.observability import metrics as m
from infra.observability.alerts import RUNBOOKS
from infra.workload import TRACK_LABEL, VERSION_LABEL
from tests.infra.edge.test_canary import DEPLOYMENT, HTTP_ROUTE, _deployments
from tests.infra.edge.test_config import CANARY
from tests.infra.edge.test_crd_rules import _check, _schema
from tests.infra.observability_queries import (
    ALERT_POLICY,
    DASHBOARD,
    dashboard_data_sets,
    promql_queries,
    result_labels,
    selectors,
)
from tests.infra.plans import STACKS, Plan, stack_config
from tests.infra.test_kubernetes_schemas import _kubernetes_version, _validate

CANDIDATE = {"bento": CANARY["bento"], "image": CANARY["image"]}
TRACK_KINDS = ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget")
ROLLOUT_ALERTS = ("flag-rate-drift", "error-ratio", "p99-latency")


def _with_release(**tracks: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        config["moderation:release"].update(copy.deepcopy(tracks))

    return change


@pytest.fixture(scope="module")
def rollout(plans: dict[str, Plan], plan_variant: Callable[..., Plan]) -> dict[str, Plan]:
    """dev at each step of a rollout; `stable` is the committed stack (and every rollback)."""
    stable = stack_config("dev")["moderation:release"]["stable"]
    return {
        "stable": plans["dev"],
        "shadow": plan_variant("dev", _with_release(shadow=CANDIDATE)),
        "canary": plan_variant("dev", _with_release(canary=CANARY)),
        "canary+shadow": plan_variant(
            "dev",
            _with_release(canary=CANARY, shadow={**stable, "bento": "moderation:0.3.0"}),
        ),
        "promoted": plan_variant("dev", _with_release(stable=CANDIDATE)),
    }


@pytest.fixture(scope="module", params=STACKS)
def shadow_plan(
    request: pytest.FixtureRequest, rollout: dict[str, Plan], plan_variant: Callable[..., Plan]
) -> Plan:
    """The committed stack with the candidate as a shadow (dev's is the rollout's shadow step)."""
    if request.param == "dev":
        return rollout["shadow"]
    return plan_variant(request.param, _with_release(shadow=CANDIDATE))


def _rules(plan: Plan) -> list[dict[str, Any]]:
    """Rules of the HTTPS route (the redirect route has no backends)."""
    return [
        rule
        for route in plan.of_type(HTTP_ROUTE)
        for rule in route["inputs"]["spec"]["rules"]
        if rule.get("backendRefs")
    ]


def _mirrors(rule: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        f["requestMirror"]["backendRef"]
        for f in rule.get("filters", [])
        if f["type"] == "RequestMirror"
    ]


def _tracks_by_region(plan: Plan) -> dict[str, dict[str, dict[str, Any]]]:
    """Each region's release-track Deployments, by metadata name."""
    return {
        region: {
            d["inputs"]["metadata"]["name"]: d["inputs"]
            for d in deployments
            if TRACK_LABEL in d["inputs"]["metadata"]["labels"]
        }
        for region, deployments in plan.in_each_region(DEPLOYMENT).items()
    }


def _backend_ref(plan: Plan, name: str) -> dict[str, Any]:
    """How the route names a track's backend: its Service, or with several regions its
    `ServiceImport` (docs/deploy.md "Serving from several regions")."""
    if len(plan.regions) > 1:
        return {"group": "net.gke.io", "kind": "ServiceImport", "name": name, "port": 80}
    return {"name": name, "port": 80}


def _track_objects(plan: Plan, track: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The objects of one track, by (type, logical name), as the engine receives them."""
    return {
        (r["type"], r["name"]): r["inputs"]
        for r in plan["resources"]
        if r["name"] == f"moderation-{track}" and r["type"].startswith("kubernetes:")
    }


def _policies(plan: Plan) -> dict[str, dict[str, Any]]:
    return {p["name"].removeprefix("moderation-"): p["inputs"] for p in plan.of_type(ALERT_POLICY)}


# --- the shadow track -----------------------------------------------------------------------------


def test_shadow_runs_its_own_image_and_gets_a_copy_of_every_api_request(shadow_plan: Plan) -> None:
    for region, deployments in _tracks_by_region(shadow_plan).items():
        assert set(deployments) == {"moderation-stable", "moderation-shadow"}, region
        shadow = deployments["moderation-shadow"]["spec"]["template"]
        assert shadow["spec"]["containers"][0]["image"] == CANDIDATE["image"], region
    (api_rule, health_rule) = _rules(shadow_plan)
    assert _mirrors(api_rule) == [_backend_ref(shadow_plan, "moderation-shadow")]
    assert _mirrors(health_rule) == []  # the uptime check's probes are not copied


def test_client_traffic_goes_only_to_stable_and_canary(rollout: dict[str, Plan]) -> None:
    for step, plan in rollout.items():
        answering = {"moderation-stable", *(["moderation-canary"] if "canary" in step else [])}
        for rule in _rules(plan):
            assert {backend["name"] for backend in rule["backendRefs"]} == answering, step
            assert sum(backend["weight"] for backend in rule["backendRefs"]) == 100, step
    (api_rule, _) = _rules(rollout["canary+shadow"])
    assert _mirrors(api_rule) == [{"name": "moderation-shadow", "port": 80}]


def test_every_object_of_a_shadow_plan_passes_its_schema_and_crd_rules(shadow_plan: Plan) -> None:
    version = _kubernetes_version(shadow_plan.stack)
    kinds = set()
    for obj in shadow_plan.kubernetes_objects():
        _validate(obj, version)
        if _schema(obj["apiVersion"], obj["kind"]):
            broken, _ = _check(obj)
            assert broken == [], f"{obj['kind']} {obj['metadata']['name']}"
            kinds.add(obj["kind"])
    assert {"HTTPRoute", "GCPBackendPolicy", "HealthCheckPolicy"} <= kinds


def test_the_shadow_backend_gets_the_same_armor_logging_and_health_check(
    shadow_plan: Plan,
) -> None:
    for policy_type in ("GCPBackendPolicy", "HealthCheckPolicy"):
        policies = shadow_plan.of_type(f"kubernetes:networking.gke.io/v1:{policy_type}")
        by_service = {p["inputs"]["spec"]["targetRef"]["name"]: p["inputs"] for p in policies}
        assert set(by_service) == {"moderation-stable", "moderation-shadow"}
        assert (
            by_service["moderation-stable"]["spec"]["default"]
            == (by_service["moderation-shadow"]["spec"]["default"])
        )


# --- per-track signals ----------------------------------------------------------------------------


def test_every_series_carries_its_pods_track_and_bento_version(shadow_plan: Plan) -> None:
    scrapes = shadow_plan.each_region("kubernetes:monitoring.googleapis.com/v1:PodMonitoring")
    tracks = _tracks_by_region(shadow_plan)
    bentos = {"moderation-stable": "moderation:0.1.0", "moderation-shadow": CANDIDATE["bento"]}
    for region, monitoring in scrapes.items():
        copied = {
            label["from"]: label["to"]
            for label in monitoring["inputs"]["spec"]["targetLabels"]["fromPod"]
        }
        assert copied == {TRACK_LABEL: m.TRACK, VERSION_LABEL: m.VERSION}, region
        assert set(tracks[region]) == set(bentos), region
        for name, deployment in tracks[region].items():
            pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
            assert pod_labels[TRACK_LABEL] == name.removeprefix("moderation-"), region
            assert pod_labels[VERSION_LABEL] == bentos[name].partition(":")[2], region


def test_the_dashboard_compares_tracks_on_flags_scores_errors_and_latency(plan: Plan) -> None:
    queries = [
        data_set["timeSeriesQuery"]["prometheusQuery"]
        for data_set in dashboard_data_sets(plan.one(DASHBOARD))
        if "prometheusQuery" in data_set["timeSeriesQuery"]
    ]
    by_track = {
        selector.name
        for query in queries
        if m.TRACK in result_labels(query)
        for selector in selectors(query)
    }
    assert {
        m.FLAGGED.series(),
        m.SCORES.series("_bucket"),
        m.REQUESTS.series(),
        m.HTTP_DURATION.series("_bucket"),
    } <= by_track


def test_each_candidate_is_compared_with_stable_by_its_own_alerts(
    rollout: dict[str, Plan],
) -> None:
    rollout_keys = {
        f"{track}-{alert}" for track in ("canary", "shadow") for alert in ROLLOUT_ALERTS
    }
    for step, plan in rollout.items():
        present = set(_policies(plan)) & rollout_keys
        tracks = {"canary", "shadow"} & set(step.split("+"))
        assert present == {f"{t}-{alert}" for t in tracks for alert in ROLLOUT_ALERTS}, step
    policies = _policies(rollout["canary+shadow"])
    assert policies["canary-error-ratio"]["severity"] == "CRITICAL"  # clients get a canary's 5xx
    assert policies["shadow-error-ratio"]["severity"] == "WARNING"  # nobody gets a shadow's
    for key in rollout_keys:
        runbook = RUNBOOKS[f"rollout-{key.split('-', 1)[1]}"]
        assert policies[key]["documentation"]["content"] == runbook


def test_rollout_alerts_use_the_stacks_bounds_and_both_tracks(rollout: dict[str, Plan]) -> None:
    bounds = stack_config("dev")["moderation:observability"]["rollout"]
    policies = _policies(rollout["shadow"])

    def query(key: str) -> str:
        (condition,) = policies[key]["conditions"]
        return condition["conditionPrometheusQueryLanguage"]["query"]

    window = f"[{bounds['windowMinutes']}m]"
    drift = query("shadow-flag-rate-drift")
    assert f"> {bounds['flagRateDrift']} " in drift
    assert f">= {bounds['minSamples']})" in drift
    assert f"+ {bounds['errorRatioMargin']})" in query("shadow-error-ratio")
    assert f"({bounds['p99LatencyRatio']} * histogram_quantile" in query("shadow-p99-latency")
    for key in (f"shadow-{alert}" for alert in ROLLOUT_ALERTS):
        # the candidate against stable, over the configured window
        assert 'track="shadow"' in query(key) and 'track="stable"' in query(key), key
        assert window in query(key), key


def test_release_track_queries_use_catalogued_metrics_and_labels(rollout: dict[str, Plan]) -> None:
    """Like test_observability_metric_names, on a plan that has candidate tracks."""
    catalogue = {metric.name: metric for metric in m.PROM_METRICS}
    for query in promql_queries(rollout["canary+shadow"]):
        for selector in selectors(query):
            base = selector.name
            for suffix in ("_bucket", "_sum", "_count"):
                if base.removesuffix(suffix) in catalogue:
                    base = base.removesuffix(suffix)
            metric = catalogue[base]
            unknown = selector.labels - metric.labels - m.TARGET_LABELS
            assert not unknown, f"{query}: {metric.name} has no label {sorted(unknown)}"


# --- promotion and rollback -----------------------------------------------------------------------


def test_adding_or_removing_a_candidate_leaves_stable_untouched(rollout: dict[str, Plan]) -> None:
    """Starting a shadow or a canary, or rolling it back (the committed stack), never restarts
    or rescales the stable pods: its objects are the same in every step."""
    stable = _track_objects(rollout["stable"], "stable")
    assert {key[0].rsplit(":", 1)[1] for key in stable} == set(TRACK_KINDS)
    for step in ("shadow", "canary", "canary+shadow"):
        assert _track_objects(rollout[step], "stable") == stable, step


IMAGE_TYPES = {"docker-build:index:Image", "moderation:infra:BentoImage"}


def test_promotion_swaps_only_the_stable_release(rollout: dict[str, Plan]) -> None:
    """Promote = the candidate's bento and image become `release.stable`, the candidate goes."""
    before, after = rollout["stable"], rollout["promoted"]
    assert set(_deployments(after)) == {"moderation-stable"}

    # The old Bento's image leaves the stack (kept in the registry: infra/image.py); nothing else.
    def names(plan: Plan) -> set[str]:
        return {r["name"] for r in plan["resources"] if r["type"] not in IMAGE_TYPES}

    assert names(after) == names(before)
    old = _track_objects(before, "stable")[(DEPLOYMENT, "moderation-stable")]
    new = _track_objects(after, "stable")[(DEPLOYMENT, "moderation-stable")]
    assert new["spec"]["template"]["spec"]["containers"][0]["image"] == CANDIDATE["image"]
    assert new["spec"]["selector"] == old["spec"]["selector"]  # selectors are immutable

    # Nothing else changes: the old Deployment with the candidate's release is the new one.
    expected = copy.deepcopy(old)
    version = CANDIDATE["bento"].partition(":")[2]
    for metadata in (expected["metadata"], expected["spec"]["template"]["metadata"]):
        metadata["labels"][VERSION_LABEL] = version
        metadata["annotations"]["moderation.dev/bento"] = CANDIDATE["bento"]
    expected["spec"]["template"]["spec"]["containers"][0]["image"] = CANDIDATE["image"]
    assert new == expected
    assert after.outputs["releaseTracks"] == {"stable": CANDIDATE["bento"]}
