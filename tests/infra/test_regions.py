"""Several regions behind one multi-cluster Gateway (`moderation:fleet`), on the committed prod
stack (europe-west1 and us-central1) and on prod with a third region: each region its own
cluster, one Gateway of the multi-cluster class on the one global address, and the
preconditions GKE enforces as dependencies: the fleet features before the exports ("no matches
for kind ServiceExport" until the MCS feature installed its CRD), the exports before the routes
and policies that name their imports, the features kept on destroy or adopted (one per
project), a new region that changes nothing already there, and a removed region drained before
its pods go."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from infra.apis import FLEET_APIS
from infra.config import ConfigError, parse_stack_config
from infra.edge.gateway import MULTI_CLUSTER_GATEWAY_CLASS
from infra.fleet import INGRESS_FEATURE, SERVICES_FEATURE
from infra.observability import metrics as m
from tests.infra.edge.gateway_features import (
    UNMAPPED,
    gateway_features,
    httproute_features,
    report,
    unsupported,
)
from tests.infra.google_discovery import check_resource
from tests.infra.logging_filter import matches
from tests.infra.observability_queries import SLO
from tests.infra.plans import Plan, stack_config
from tests.infra.test_apis import missing_apis
from tests.infra.test_kubernetes_schemas import _kubernetes_version, _validate
from tools import cost

CLUSTER = "gcp:container/cluster:Cluster"
FEATURE = "gcp:gkehub/feature:Feature"
MEMBERSHIP = "gcp:gkehub/membership:Membership"
EXPORT = "kubernetes:net.gke.io/v1:ServiceExport"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SLEEP = "time:index/sleep:Sleep"
POD_TEXTS_PER_S = 9.55

# Region -> (zones, first octet block of its ranges): disjoint from prod's own ranges.
REGIONS: dict[str, tuple[list[str], int]] = {
    "us-central1": (["us-central1-a", "us-central1-b", "us-central1-c"], 111),
    "asia-northeast1": (["asia-northeast1-a", "asia-northeast1-b", "asia-northeast1-c"], 112),
}


def _region(name: str, index: int) -> dict[str, Any]:
    zones, block = REGIONS[name]
    return {
        "nodeZones": zones,
        "network": {
            "subnetCidr": f"10.{block}.0.0/20",
            "podsCidr": f"10.{block + 10}.0.0/16",
            "servicesCidr": f"10.{block + 20}.0.0/20",
            "masterCidr": f"172.16.1.{16 * (index + 1)}/28",  # after prod's 172.16.1.0/28
            "flowLogs": True,  # as prod's own region
            "flowLogsSampling": 0.5,
        },
    }


def with_regions(*names: str, features: str = "create") -> Callable[[dict[str, Any]], None]:
    """Prod plus these regions, sized so that one region lost still serves the peak."""

    def change(config: dict[str, Any]) -> None:
        config["moderation:fleet"] = {
            "features": features,
            "regions": [_region(name, index) for index, name in enumerate(names)],
            "peakTextsPerSecond": 100,
            "podTextsPerSecond": POD_TEXTS_PER_S,
        }

    return change


@pytest.fixture(scope="module")
def two_regions(plans: dict[str, Plan]) -> Plan:
    """The committed prod stack: its own region and us-central1, as `with_regions` adds it."""
    plan = plans["prod"]
    assert plan.regions == ["europe-west1", "us-central1"]
    return plan


@pytest.fixture(scope="module")
def three_regions(plan_variant: Callable[..., Plan]) -> Plan:
    return plan_variant("prod", with_regions("us-central1", "asia-northeast1"))


def _objects(plan: Plan, kind: str) -> list[dict[str, Any]]:
    return [obj for obj in plan.kubernetes_objects() if obj["kind"] == kind]


def test_each_region_is_its_own_cluster_behind_one_gateway_on_one_address(
    two_regions: Plan,
) -> None:
    locations = {cluster["inputs"]["location"] for cluster in two_regions.of_type(CLUSTER)}
    assert locations == {"europe-west1", "us-central1"}
    (gateway,) = _objects(two_regions, "Gateway")
    assert gateway["spec"]["gatewayClassName"] == MULTI_CLUSTER_GATEWAY_CLASS
    assert len(two_regions.of_type("gcp:compute/globalAddress:GlobalAddress")) == 1
    assert {m["inputs"]["location"] for m in two_regions.of_type(MEMBERSHIP)} == locations
    # One VPC, one subnet per region.
    assert len(two_regions.of_type("gcp:compute/network:Network")) == 1
    subnets = two_regions.of_type("gcp:compute/subnetwork:Subnetwork")
    assert {subnet["inputs"]["region"] for subnet in subnets} == locations


def test_the_ingress_feature_names_the_first_region_as_config_cluster(two_regions: Plan) -> None:
    ingress = two_regions.one(FEATURE, f"moderation-{INGRESS_FEATURE}")
    config_membership = two_regions.one(MEMBERSHIP, "moderation-europe-west1")
    assert Plan.address(config_membership) in ingress["dependencies"]
    assert ingress["inputs"]["location"] == "global"


def test_fleet_features_are_kept_on_destroy_or_adopted(
    two_regions: Plan, plan_variant: Callable[..., Plan]
) -> None:
    """One per project: a stack that declares them keeps them when it goes (another stack may
    route through them); a stack that adopts them declares none (a second create is a 409)."""
    features = two_regions.of_type(FEATURE)
    assert {f["inputs"]["name"] for f in features} == {SERVICES_FEATURE, INGRESS_FEATURE}
    for feature in features:
        assert two_regions.options[Plan.address(feature)]["retainOnDelete"] is True
    adopted = plan_variant("prod", with_regions("us-central1", features="existing"))
    assert adopted.of_type(FEATURE) == []
    assert len(adopted.of_type(EXPORT)) == len(two_regions.of_type(EXPORT))


def test_each_cluster_exports_each_track_after_the_services_feature(two_regions: Plan) -> None:
    exports = two_regions.of_type(EXPORT)
    exported = {export["inputs"]["metadata"]["name"] for export in exports}
    assert len(exports) == 2 and exported == {"moderation-stable"}
    feature = Plan.address(two_regions.one(FEATURE, f"moderation-{SERVICES_FEATURE}"))
    importer = "gcp:projects/iAMMember:IAMMember::moderation-mcs-importer"
    for export in exports:
        assert {feature, importer} <= two_regions.waits_for(export), export["name"]


def test_routes_and_policies_name_the_imports_and_wait_for_the_exports(two_regions: Plan) -> None:
    exports = {Plan.address(export) for export in two_regions.of_type(EXPORT)}
    for kind in ("HTTPRoute", "GCPBackendPolicy", "HealthCheckPolicy"):
        for resource in two_regions["resources"]:
            if resource["inputs"].get("kind") != kind:
                continue
            spec = resource["inputs"]["spec"]
            if kind == "HTTPRoute" and spec["parentRefs"][0]["sectionName"] == "http":
                continue  # the redirect has no backend
            assert exports <= two_regions.waits_for(resource), resource["name"]
            refs = (
                [ref for rule in spec["rules"] for ref in rule["backendRefs"]]
                if kind == "HTTPRoute"
                else [spec["targetRef"]]
            )
            assert {(ref["group"], ref["kind"]) for ref in refs} == {
                ("net.gke.io", "ServiceImport")
            }
    gateway = next(r for r in two_regions["resources"] if r["inputs"].get("kind") == "Gateway")
    ingress = f"{FEATURE}::moderation-{INGRESS_FEATURE}"
    assert ingress in two_regions.waits_for(gateway)


def test_spillover_rate_is_what_a_pod_sustains(two_regions: Plan) -> None:
    (policy,) = _objects(two_regions, "GCPBackendPolicy")
    assert policy["spec"]["default"]["maxRatePerEndpoint"] == math.floor(POD_TEXTS_PER_S)


def test_the_multi_cluster_route_uses_only_features_gkes_report_claims(two_regions: Plan) -> None:
    """GKE publishes its conformance report for the single-cluster class only, and documents
    the multi-cluster class as supporting the same features or fewer: what the report does not
    claim is not used here either (a necessary condition, not a sufficient one)."""
    used: dict[str, str] = {}
    for obj in two_regions.kubernetes_objects():
        if obj["kind"] == "Gateway":
            used |= gateway_features(obj["spec"])
        elif obj["kind"] == "HTTPRoute":
            used |= httproute_features(obj["spec"])
    assert {path for path, feature in used.items() if feature == UNMAPPED} == set()
    assert unsupported(used, report()) == {}


def test_fleet_resources_against_googles_api_definitions(two_regions: Plan) -> None:
    """Memberships and features hold only fields and values GKE Hub's discovery document knows
    and has not deprecated, and each waits for the APIs it calls, the fleet's among them."""
    for resource in two_regions.of_type(MEMBERSHIP) + two_regions.of_type(FEATURE):
        assert check_resource(resource).problems == [], resource["name"]
    assert missing_apis(two_regions) == {}
    enabled = {s["inputs"]["service"] for s in two_regions.of_type("gcp:projects/service:Service")}
    assert set(FLEET_APIS) <= enabled


def _by_address(plan: Plan) -> dict[str, dict[str, Any]]:
    return {Plan.address(resource): resource for resource in plan["resources"]}


def test_adding_a_region_changes_nothing_already_there(
    two_regions: Plan, three_regions: Plan
) -> None:
    """Nothing of the first two regions (nor the edge) gets a new input, so nothing is updated
    or replaced: the new region only adds resources (and dependencies)."""
    before, after = _by_address(two_regions), _by_address(three_regions)
    assert set(before) <= set(after)
    changed = [a for a in before if before[a]["inputs"] != after[a]["inputs"]]
    assert changed == []
    assert any("asia-northeast1" in address for address in set(after) - set(before))


def test_a_removed_region_is_drained_before_its_pods_go(
    two_regions: Plan, three_regions: Plan
) -> None:
    """The engine deletes what waits on something before that something: the removed region's
    export goes first, then a wait as long as the edge drains connections, then its pods."""
    removed = set(_by_address(three_regions)) - set(_by_address(two_regions))
    exports = [r for r in three_regions.of_type(EXPORT) if Plan.address(r) in removed]
    assert exports
    draining = stack_config("prod")["moderation:edge"]["connectionDrainingSec"]
    for export in exports:
        waits = three_regions.waits_for(export)
        (drain,) = [
            r for r in three_regions.of_type(SLEEP) if Plan.address(r) in export["dependencies"]
        ]
        assert drain["inputs"]["destroyDuration"] == f"{draining}s"
        pods = [d for d in three_regions.of_type(DEPLOYMENT) if Plan.address(d) in waits]
        assert pods and all(
            Plan.address(d) in three_regions.waits_for(drain) and Plan.address(d) in removed
            for d in pods
        )


def test_a_fleet_that_cannot_lose_a_region_is_refused() -> None:
    config = stack_config("prod")
    with_regions("us-central1")(config)
    config["moderation:fleet"]["peakTextsPerSecond"] = 1000  # 12 pods x 9.55/s = 114.6 left
    with pytest.raises(ConfigError, match=r"moderation:fleet\.peakTextsPerSecond 1000 is more"):
        parse_stack_config(config)
    with_regions("us-central1", "asia-northeast1")(config)
    config["moderation:fleet"]["peakTextsPerSecond"] = 229  # two regions left: 229.2
    parse_stack_config(config)


def test_regions_share_one_vpc_so_their_ranges_must_not_overlap() -> None:
    config = stack_config("prod")
    with_regions("us-central1")(config)
    config["moderation:fleet"]["regions"][0]["network"]["podsCidr"] = "10.120.0.0/16"
    with pytest.raises(ConfigError, match=r"fleet\.regions\[0\]\.network\.podsCidr overlaps"):
        parse_stack_config(config)


def test_every_region_logs_its_flows_as_the_stacks_own_region_does() -> None:
    """Each region's `network` is its own section: one left without flow logs is refused."""
    config = stack_config("prod")
    with_regions("us-central1")(config)
    parse_stack_config(config)
    del config["moderation:fleet"]["regions"][0]["network"]["flowLogs"]
    with pytest.raises(ConfigError, match=r"fleet\.regions\[0\]\.network\.flowLogs False"):
        parse_stack_config(config)


def test_each_region_that_serves_nothing_alerts_and_the_uptime_check_spans_continents(
    two_regions: Plan,
) -> None:
    """Both clusters carry one name, so every existing query covers both regions; the region is
    the `location` label. A region silent while the stack serves pages on its own."""
    assert {c["inputs"]["name"] for c in two_regions.of_type(CLUSTER)} == {"moderation"}
    policies = two_regions.of_type("gcp:monitoring/alertPolicy:AlertPolicy")
    silent = {
        p["name"]: p["inputs"]["conditions"][0]["conditionPrometheusQueryLanguage"]["query"]
        for p in policies
        if "region-silent" in p["name"]
    }
    assert set(silent) == {
        "moderation-region-silent-europe-west1",
        "moderation-region-silent-us-central1",
    }
    for name, query in silent.items():
        region = name.removeprefix("moderation-region-silent-")
        assert f'location="{region}"' in query and "or vector(0)) == 0" in query
    (uptime,) = two_regions.of_type("gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig")
    assert len(uptime["inputs"]["selectedRegions"]) >= 3  # Monitoring's minimum when named
    assert check_resource(uptime).problems == []
    for policy in silent:
        assert (
            check_resource(
                two_regions.one("gcp:monitoring/alertPolicy:AlertPolicy", policy)
            ).problems
            == []
        )


def test_make_cost_sizes_a_plan_of_several_regions(two_regions: Plan) -> None:
    """`make cost` reads a plan of several regions: every region's pools priced, the sizing by
    the plan's own region count (either region carries the whole peak when the other is lost)."""
    sizing = cost.size_for_rate(two_regions, 10_000, regions=2)
    assert (sizing.pods_per_region, sizing.nodes_per_region) == (3140, 1570)
    clusters = [
        i for i in cost.estimate(two_regions, cost.USAGE["prod"]) if "GKE cluster" in i.item
    ]
    assert len(clusters) == 2


def test_every_object_of_several_regions_passes_its_schema(two_regions: Plan) -> None:
    """The Gateway, routes and policies with `ServiceImport` references against the Gateway API
    and GKE policy CRD schemas, and the core kinds of every region against Kubernetes'."""
    version = _kubernetes_version("prod")
    for obj in two_regions.kubernetes_objects():
        try:
            _validate(obj, version)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as error:
            pytest.fail(f"{obj['kind']} {obj['metadata'].get('name')}: {error}")


def test_the_dashboard_charts_requests_and_latency_by_region(two_regions: Plan) -> None:
    (board,) = two_regions.of_type("gcp:monitoring/dashboard:Dashboard")
    queries = [
        data_set["timeSeriesQuery"]["prometheusQuery"]
        for tile in json.loads(board["inputs"]["dashboardJson"])["mosaicLayout"]["tiles"]
        for data_set in tile["widget"]["xyChart"]["dataSets"]
        if "prometheusQuery" in data_set["timeSeriesQuery"]
    ]
    assert sum("by (location)" in q or "by (le, location)" in q for q in queries) == 2
    assert check_resource(board).problems == []


def _series(metric_type: str, location: str) -> dict[str, Any]:
    """A Managed Prometheus series of the service as Monitoring filters address it
    (`resource.label.<key>`): the one cluster name, the region it was scraped in."""
    return {
        "metric": {"type": metric_type, "label": {"route": "/v1/moderations"}},
        "resource": {
            "type": "prometheus_target",
            "label": {"cluster": "moderation", "namespace": "moderation", "location": location},
        },
    }


def test_each_region_has_slos_over_its_own_series_only(two_regions: Plan) -> None:
    """A region's SLOs count that region's requests and no other's; the stack's count all of
    them, so one region burning its budget alerts even while the stack's average holds."""
    slos = {s["inputs"]["sloId"]: s["inputs"] for s in two_regions.of_type(SLO)}
    filters = {
        "availability": (
            lambda sli: sli["goodTotalRatio"]["totalServiceFilter"],
            m.REQUESTS.monitoring_type,
        ),
        "latency": (
            lambda sli: sli["distributionCut"]["distributionFilter"],
            m.HTTP_DURATION.monitoring_type,
        ),
    }
    regions = two_regions.regions
    for key, (selected, metric_type) in filters.items():
        stack_wide = selected(slos[key]["requestBasedSli"])
        for region in regions:
            regional = slos[f"{key}-{region}"]
            assert regional["goal"] == slos[key]["goal"]
            for location in regions:
                series = _series(metric_type, location)
                assert matches(stack_wide, series), (key, location)
                counted = matches(selected(regional["requestBasedSli"]), series)
                assert counted is (location == region), (key, region, location)
