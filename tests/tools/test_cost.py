"""`python -m tools.cost`: prices from the table applied to what a plan declares."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infra.machines import FAMILIES, GPU_TYPES
from service.catalog import FP32_CPU, Backend, Runtime
from tools import capacity, cost

ROOT = Path(__file__).resolve().parents[2]
HOURS = cost.HOURS_PER_MONTH


def _pool(machine_type: str, low: int, high: int, *, spot: bool = False, **extra: object) -> dict:
    return {
        "type": "gcp:container/nodePool:NodePool",
        "name": machine_type,
        "inputs": {
            "autoscaling": {"totalMinNodeCount": low, "totalMaxNodeCount": high},
            "nodeConfig": {
                "machineType": machine_type,
                "spot": spot,
                "diskSizeGb": 100,
                "diskType": "pd-standard",
                **extra,
            },
        },
    }


def _plan(location: str = "us-central1-a", *resources: dict) -> dict:
    cluster = {
        "type": "gcp:container/cluster:Cluster",
        "name": "c",
        "inputs": {"location": location},
    }
    return {"project": "moderation", "stack": "dev", "resources": [cluster, *resources]}


USAGE = cost.Usage(
    requests_millions=10,
    bytes_per_request=1000,
    log_gib=60,
    image_gib_stored=10.5,
    prometheus_series_per_pod=100,
    scrape_interval_seconds=30,
    nat_gib=0,
)


def _item(items: list[cost.LineItem], prefix: str) -> cost.LineItem:
    (item,) = [i for i in items if i.item.startswith(prefix)]
    return item


def test_on_demand_nodes_are_priced_per_vcpu_and_gib_at_min_and_max_scale() -> None:
    items = cost.estimate(_plan("us-central1-a", _pool("e2-standard-4", 1, 3)), USAGE)
    nodes = _item(items, "nodes e2-standard-4 (on-demand)")
    hourly = 4 * 0.021811 + 16 * 0.002923  # Google's list price of e2-standard-4: $0.134012/h
    assert nodes.low == pytest.approx(hourly * HOURS)
    assert nodes.high == pytest.approx(3 * hourly * HOURS)
    disks = _item(items, "boot disks pd-standard")
    assert (disks.low, disks.high) == pytest.approx((100 * 0.04, 3 * 100 * 0.04))


def test_spot_nodes_cost_the_regions_dated_share_of_on_demand_and_it_can_be_overridden() -> None:
    def nodes(spot: bool, **options: float) -> cost.LineItem:
        plan = _plan("us-central1-a", _pool("e2-standard-8", 2, 2, spot=spot))
        return _item(cost.estimate(plan, USAGE, **options), "nodes")

    spot, on_demand = nodes(True), nodes(False)
    assert spot.item == "nodes e2-standard-8 (spot)"
    assert cost.SPOT_SHARES["us-central1"].share == 0.29
    assert spot.low == pytest.approx(on_demand.low * 0.29)
    assert nodes(True, spot_share=0.5).low == pytest.approx(on_demand.low * 0.5)


def test_a_spot_pool_in_a_region_without_a_spot_share_is_an_error_unless_overridden() -> None:
    plan = _plan("us-east1-b", _pool("n2-standard-4", 1, 1, spot=True))
    with pytest.raises(cost.PlanError, match="no spot share for region 'us-east1'"):
        cost.estimate(plan, USAGE)
    assert _item(cost.estimate(plan, USAGE, spot_share=0.3), "nodes").low > 0


def test_on_demand_n2_nodes_get_the_full_month_sustained_use_discount_and_e2_none() -> None:
    n2 = _item(cost.estimate(_plan("us-central1-a", _pool("n2-standard-8", 1, 1)), USAGE), "nodes")
    # n2-standard-8 list price 8 x 0.031611 + 32 x 0.004237 = $0.388472/h, less 20% all month.
    assert n2.low == pytest.approx(0.388472 * 0.80 * HOURS)
    assert "20% sustained use" in n2.basis
    spot = _pool("n2-standard-8", 1, 1, spot=True)
    spot_n2 = _item(cost.estimate(_plan("us-central1-a", spot), USAGE), "nodes")
    assert spot_n2.low == pytest.approx(0.388472 * 0.29 * HOURS)  # no discount on spot


def test_g2_prices_its_own_l4_once_even_when_the_pool_declares_it_as_an_accelerator() -> None:
    declared = [{"type": "nvidia-l4", "count": 1}]
    plain = _pool("g2-standard-4", 1, 1)
    with_l4 = _pool("g2-standard-4", 1, 1, guestAccelerators=declared)
    for pool in (plain, with_l4):
        nodes = _item(cost.estimate(_plan("us-central1-a", pool), USAGE), "nodes")
        # Google's list price of g2-standard-4 (4 vCPU, 16 GB, one L4) is about $0.7068/h.
        assert nodes.low / HOURS == pytest.approx(0.7068, abs=0.001)


def test_zonal_cluster_fee_is_credited_by_the_free_tier_but_regional_is_not() -> None:
    zonal = cost.estimate(_plan("us-central1-a"), USAGE)
    regional = cost.estimate(_plan("us-central1"), USAGE)
    assert sum(i.low for i in zonal if "GKE" in i.item) == 0
    assert sum(i.low for i in regional if "GKE" in i.item) == pytest.approx(0.10 * HOURS)


def test_region_factor_scales_compute() -> None:
    us = _item(cost.estimate(_plan("us-central1-a", _pool("e2-standard-2", 1, 1)), USAGE), "nodes")
    eu = _item(cost.estimate(_plan("europe-west1-b", _pool("e2-standard-2", 1, 1)), USAGE), "nodes")
    assert eu.low == pytest.approx(us.low * cost.REGION_FACTORS["europe-west1"])


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_of_the_machine_table_has_a_price(family: str) -> None:
    """Config validation accepts exactly the machine table's families: each must be priceable."""
    shape = next(iter(FAMILIES[family].memory_per_vcpu))
    pool = _pool(f"{family}-{shape}-8", 1, 1)
    assert _item(cost.estimate(_plan("us-central1-a", pool), USAGE), "nodes").low > 0


@pytest.mark.parametrize("gpu", sorted(GPU_TYPES))
def test_every_gpu_of_the_machine_table_has_a_price(gpu: str) -> None:
    assert cost.GPU_HOURLY[gpu] > 0


@pytest.mark.parametrize(
    ("location", "resources", "message"),
    [
        ("us-central1-a", [_pool("m3-ultramem-32", 1, 1)], "no price for machine type"),
        ("us-central1-a", [_pool("e2-custom-4-8192", 1, 1)], "no price for machine type"),
        ("mars-north1-a", [], "no price factor for region"),
    ],
)
def test_what_the_table_cannot_price_is_an_error_not_a_guess(
    location: str, resources: list[dict], message: str
) -> None:
    with pytest.raises(cost.PlanError, match=message):
        cost.estimate(_plan(location, *resources), USAGE)


def test_edge_and_observability_lines_follow_the_plan_and_usage() -> None:
    plan = _plan(
        "us-central1",
        {"type": "kubernetes:gateway.networking.k8s.io/v1:Gateway", "name": "g", "inputs": {}},
        {
            "type": "gcp:compute/securityPolicy:SecurityPolicy",
            "name": "armor",
            "inputs": {"rules": [{}, {}, {}]},
        },
        {
            "type": "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
            "name": "hpa",
            "inputs": {"spec": {"minReplicas": 2, "maxReplicas": 6}},
        },
        {
            "type": "gcp:monitoring/alertPolicy:AlertPolicy",
            "name": "a",
            "inputs": {"conditions": [{}, {}]},
        },
    )
    items = cost.estimate(plan, USAGE)
    lb = _item(items, "load balancer")
    # Two forwarding rules: within the first five, which cost one flat $0.025/h together.
    assert lb.low == pytest.approx(0.025 * HOURS + 10e6 * 1000 / 1e9 * 0.008)
    assert _item(items, "Cloud Armor").low == pytest.approx(5 + 3 * 1 + 10 * 0.75)
    assert _item(items, "Cloud Logging ingestion").low == pytest.approx((60 - 50) * 0.50)
    prometheus = _item(items, "Managed Prometheus")
    per_pod = 100 * cost.SECONDS_PER_MONTH / 30 / 1e6 * 0.06
    assert (prometheus.low, prometheus.high) == pytest.approx((2 * per_pod, 6 * per_pod))
    assert _item(items, "alerting").low == pytest.approx(2 * 0.10)


@pytest.mark.parametrize(("rules", "hourly"), [(0, 0.0), (2, 0.025), (5, 0.025), (8, 0.055)])
def test_forwarding_rules_first_five_are_one_flat_rate_then_each_is_extra(
    rules: int, hourly: float
) -> None:
    assert cost.forwarding_rules_hourly(rules) == pytest.approx(hourly)


def _nat(location: str, pool: dict, **nat: object) -> list[cost.LineItem]:
    router_nat = {
        "type": "gcp:compute/routerNat:RouterNat",
        "name": "nat",
        "inputs": {"natIpAllocateOption": "AUTO_ONLY", **nat},
    }
    usage = cost.Usage(**{**USAGE.__dict__, "nat_gib": 100})
    return cost.estimate(_plan(location, pool, router_nat), usage)


def test_nat_bills_vms_ips_and_data_the_same_in_every_region() -> None:
    us = _item(_nat("us-central1-a", _pool("e2-standard-2", 2, 40)), "Cloud NAT")
    eu = _item(_nat("europe-west1-b", _pool("e2-standard-2", 2, 40)), "Cloud NAT")
    assert (us.low, us.high) == pytest.approx((eu.low, eu.high))
    # 2 VMs + one auto-allocated IP; at 40 VMs the VM charge stops at 32 VMs, still one IP.
    assert us.low == pytest.approx((2 * 0.0014 + 0.005) * HOURS + 100 * 0.045)
    assert us.high == pytest.approx((32 * 0.0014 + 0.005) * HOURS + 100 * 0.045)
    manual = _nat(
        "us-central1-a",
        _pool("e2-standard-2", 2, 2),
        natIpAllocateOption="MANUAL_ONLY",
        natIps=["a", "b", "c"],
    )
    assert _item(manual, "Cloud NAT").low == pytest.approx(
        (2 * 0.0014 + 3 * 0.005) * HOURS + 100 * 0.045
    )


def test_pubsub_bills_delivery_to_each_subscription_like_publishing() -> None:
    sink = {
        "type": "gcp:logging/projectSink:ProjectSink",
        "name": "s",
        "inputs": {"destination": "pubsub.googleapis.com/projects/p/topics/t"},
    }
    subscription = {"type": "gcp:pubsub/subscription:Subscription", "name": "sub", "inputs": {}}
    items = cost.estimate(_plan("us-central1", sink, subscription), USAGE)
    # 60 GiB published + 60 GiB delivered, less 10 GiB free, at $40/TiB.
    assert _item(items, "Pub/Sub").low == pytest.approx((120 - 10) / 1024 * 40)


def test_adaptive_protection_is_priced_as_cloud_armor_enterprise_which_bundles_standard() -> None:
    policy = {
        "type": "gcp:compute/securityPolicy:SecurityPolicy",
        "name": "armor",
        "inputs": {
            "rules": [{}, {}],
            "adaptiveProtectionConfig": {"layer7DdosDefenseConfig": {"enable": True}},
        },
    }
    backends = [
        {
            "type": "kubernetes:networking.gke.io/v1:GCPBackendPolicy",
            "name": f"b{index}",
            "inputs": {"spec": {"default": {"securityPolicy": "armor"}}},
        }
        for index in range(3)
    ]
    items = cost.estimate(_plan("us-central1", policy, *backends), USAGE)
    enterprise = _item(items, "Cloud Armor Enterprise")
    assert enterprise.low == pytest.approx(200 + (3 - 2) * 200)
    assert not [i for i in items if i.item == "Cloud Armor"]  # policy, rules, requests bundled


def test_archive_is_priced_by_the_storage_class_each_month_of_logs_sits_in() -> None:
    bucket = {
        "storageClass": "STANDARD",
        "retentionPolicy": {"retentionPeriod": 90 * 86400},
        "lifecycleRules": [
            {
                "action": {"type": "SetStorageClass", "storageClass": "NEARLINE"},
                "condition": {"age": 30},
            },
            {
                "action": {"type": "SetStorageClass", "storageClass": "COLDLINE"},
                "condition": {"age": 60},
            },
            {"action": {"type": "Delete"}, "condition": {"age": 90}},
        ],
    }
    monthly, stored = cost.archive_monthly(bucket, gib_per_month=100)
    assert stored == 300
    assert monthly == pytest.approx(100 * (0.020 + 0.010 + 0.004))


def test_render_prints_a_table_whose_total_is_the_sum() -> None:
    items = [cost.LineItem("a", "x", 1.0, 2.0), cost.LineItem("b", "y", 10.0, 20.5)]
    table = cost.render(items, "title")
    total = table.splitlines()[-1].split()
    assert total == ["TOTAL", "11.00", "22.50"]


def test_missing_plan_says_how_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cost.main(["--stack", "dev", "--plan", str(tmp_path / "none.json")]) == 2
    assert "make plan STACK=dev" in capsys.readouterr().err


def test_real_plans_are_priced_and_prod_costs_more_than_dev(plans: dict, tmp_path: Path) -> None:
    totals = {}
    for stack, plan in plans.items():
        path = tmp_path / f"{stack}.json"
        path.write_text(json.dumps(plan))
        result = subprocess.run(
            [sys.executable, "-m", "tools.cost", "--stack", stack, "--plan", str(path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        lines = result.stdout.splitlines()
        pools = plan.of_type("gcp:container/nodePool:NodePool")
        assert sum(line.startswith("nodes ") for line in lines) == len(pools)
        for needed in ("load balancer", "Cloud Armor", "BigQuery log sink", "log archive bucket"):
            assert any(line.startswith(needed) for line in lines), f"{stack}: no {needed} line"
        (total,) = [line for line in lines if line.startswith("TOTAL")]
        low, high = (float(x.replace(",", "")) for x in total.split()[1:])
        assert any(line.startswith("Cost per million moderated texts: $") for line in lines)
        assert 0 < low <= high
        totals[stack] = low
    assert totals["prod"] > totals["dev"]


# Each committed stack's total, worked out by hand from its Pulumi.<stack>.yaml and Google's
# published prices (USD, 730 h a month, europe-west1 = us-central1 x 1.10 for compute, disks and
# load balancing; NAT the same everywhere). Counts the stack files do not state directly are
# from its plan: Cloud Armor rules (dev 11), alert conditions (14), NAT VMs = all nodes.
EU = 1.10
E2_STANDARD_2 = (2 * 0.021811 + 8 * 0.002923) * EU  # no sustained-use discount for E2
N2_STANDARD_4 = (4 * 0.031611 + 16 * 0.004237) * EU
N2_STANDARD_8 = (8 * 0.031611 + 32 * 0.004237) * EU
DISK_50GB_BALANCED = 50 * 0.100 * EU
PROMETHEUS_PER_POD = 400 * 730 * 3600 / 30 / 1e6 * 0.06  # 400 series every 30 s
NAT_DATA = 5 * 0.045


def _nat_month(vms: int) -> float:
    return (vms * 0.0014 + 1 * 0.005) * 730 + NAT_DATA  # one auto-allocated NAT IP


DEV_WORKED = {
    # zonal cluster: $0.10/h fee, credited by the free tier
    "low": 0
    + 1 * E2_STANDARD_2 * 730  # system pool, 1 node
    + 1 * DISK_50GB_BALANCED
    + 0  # model pool n2-standard-4 spot, 0 nodes
    + 0.025 * 730  # two forwarding rules: within the first five's flat rate
    + 1e6 * 2048 / 1e9 * 0.008  # 1M requests x 2 KiB through the load balancer
    + 5
    + 12 * 1  # rules: deny lists empty, 2 method, 8 WAF, 1 per-IP limit, default
    + 1 * 0.75  # Cloud Armor Standard: policy, rules, 1M requests
    + _nat_month(1)
    + 0.06  # one KMS key
    + (15 - 0.5) * 0.10  # registry
    + 0  # 10 GiB of logs: inside the 50 GiB free
    + 10 * 0.05  # BigQuery streaming; 4.7 GiB kept 14 days: inside 10 GiB free
    + 10 * (0.020 + 0.010 + 0.004)  # archive 90 days: standard, nearline, coldline months
    + 1 * PROMETHEUS_PER_POD
    + 14 * 0.10,  # alert conditions; uptime checks inside the free million
    "high": 0
    + 2 * E2_STANDARD_2 * 730
    + 2 * DISK_50GB_BALANCED
    + 3 * N2_STANDARD_4 * 0.12 * 730  # spot at 12% of on-demand in europe-west1
    + 3 * DISK_50GB_BALANCED
    + 0.025 * 730
    + 1e6 * 2048 / 1e9 * 0.008
    + 5
    + 12 * 1  # rules: deny lists empty, 2 method, 8 WAF, 1 per-IP limit, default
    + 1 * 0.75
    + _nat_month(5)
    + 0.06
    + (15 - 0.5) * 0.10
    + 10 * 0.05
    + 10 * (0.020 + 0.010 + 0.004)
    + 3 * PROMETHEUS_PER_POD
    + 14 * 0.10,
}
PROD_SHARED = (
    0.025 * 730
    + 100e6 * 2048 / 1e9 * 0.008
    + 200  # Cloud Armor Enterprise Paygo (adaptive protection on), 1 protected resource
    + 2 * 0.06  # one KMS key per region
    + (60 - 0.5) * 0.10
    + (250 - 50) * 0.50  # log ingestion beyond the free 50 GiB
    + 250 * 0.05
    + (250 * 90 / 30 - 10) * 0.02  # BigQuery: streaming, 750 GiB kept 90 days
    + 250 * (0.020 + 2 * 0.010 + 11 * 0.004)  # archive 400 days: 1 + 2 + 11 months by class
    + (250 * 2 - 10) / 1024 * 40  # Pub/Sub: published and delivered to the forwarder
    # 14 conditions, plus per region one "serves nothing" and 8 burn-rate (its own 2 SLOs)
    + (14 + 2 * (1 + 8)) * 0.10
)


def _prod_region(factor: float, model_nodes: int, system_nodes: int) -> float:
    """One of prod's regions at its own prices (europe-west1 x 1.10, us-central1 x 1.00): each
    has its regional cluster (no free tier), pools, and a NAT for its own nodes only."""
    return (
        0.10 * 730
        + model_nodes * N2_STANDARD_8 / EU * factor * 0.80 * 730  # on-demand, 20% sustained use
        + model_nodes * DISK_50GB_BALANCED / EU * factor
        + system_nodes * E2_STANDARD_2 / EU * factor * 730
        + system_nodes * DISK_50GB_BALANCED / EU * factor
        + _nat_month(model_nodes + system_nodes)
    )


PROD_WORKED = {
    "low": PROD_SHARED
    + _prod_region(EU, 3, 1)  # europe-west1
    + _prod_region(1.0, 3, 1)  # us-central1
    + 2 * 3 * PROMETHEUS_PER_POD,
    "high": PROD_SHARED
    + _prod_region(EU, 10, 3)
    + _prod_region(1.0, 10, 3)
    + 2 * 12 * PROMETHEUS_PER_POD,
}


@pytest.mark.parametrize(("stack", "worked"), [("dev", DEV_WORKED), ("prod", PROD_WORKED)])
def test_each_stacks_total_matches_the_worked_calculation(
    plans: dict, stack: str, worked: dict[str, float]
) -> None:
    items = cost.estimate(plans[stack], cost.USAGE[stack])
    assert sum(i.low for i in items) == pytest.approx(worked["low"], abs=0.01)
    assert sum(i.high for i in items) == pytest.approx(worked["high"], abs=0.01)


def test_make_cost_prints_the_serving_setting_its_basis_and_the_cheapest_family(
    plans: dict, tmp_path: Path
) -> None:
    path = tmp_path / "prod.json"
    path.write_text(json.dumps(plans["prod"]))
    result = subprocess.run(
        [sys.executable, "-m", "tools.cost", "--stack", "prod", "--plan", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    out = result.stdout
    assert "Model pods run transformers fp32 on n2-standard-8 (validated, native: fp32)" in out
    assert "Capacity (0.314 s per text, estimated from c3 transformers fp32" in out
    compared = [line.split()[0] for line in out.splitlines() if " per million (" in line]
    assert sorted(compared) == sorted(machine for machine, _ in capacity.COMPARED_MACHINES)
    costs = [
        float(line.split("$")[1].split()[0])
        for line in out.splitlines()
        if " per million (" in line
    ]
    assert costs == sorted(costs)  # cheapest first
    (cheapest,) = [line for line in out.splitlines() if line.startswith("Cheapest: ")]
    assert cheapest.startswith(f"Cheapest: {compared[0]}")


def test_a_busy_nodes_cost_per_million_is_its_hourly_price_over_its_texts() -> None:
    model = Runtime(backend=Backend.TRANSFORMERS, validated=(FP32_CPU,))
    (n2d,) = [n for n in capacity.node_throughputs(model) if n.machine_type == "n2d-standard-8"]
    hourly = (8 * 0.027502 + 32 * 0.003686) * (1 - 0.20)  # sustained use, a full month
    texts_per_hour = (
        8
        / capacity.capacity_row("n2d-standard-8", Backend.TRANSFORMERS, FP32_CPU).seconds_per_text
        * 3600
    )
    assert cost.busy_node_cost_per_million(n2d) == pytest.approx(hourly / texts_per_hour * 1e6)
    (g2,) = [n for n in capacity.node_throughputs(model) if n.machine_type == "g2-standard-4"]
    assert str(g2.row.setting) == "gpu:fp32"  # the fp32 reference on the L4: none validated
    assert g2.row.gpu_type == "nvidia-l4"


def test_sizing_for_a_rate_carries_the_peak_with_one_region_lost(plans: dict) -> None:
    """Worked by hand for prod's pods (3 inference threads at 0.314 s a text = 9.554 texts/s,
    two per n2-standard-8): 10,000 texts/s sustained peaks at 30,000 texts/s."""
    plan = plans["prod"]
    alone = cost.size_for_rate(plan, 10_000, regions=1)
    assert alone.pod_texts_per_s == pytest.approx(3 / 0.314)
    assert alone.pods_per_region == 3140  # ceil(30,000 / 9.554)
    assert alone.nodes_per_region == 1570
    assert alone.mean_nodes_per_region == 524  # ceil(ceil(10,000 / 9.554) / 2)
    # Two regions: either one carries the whole peak when the other is lost; three: half each.
    two, three = (cost.size_for_rate(plan, 10_000, regions=n) for n in (2, 3))
    assert two.nodes_per_region == 1570 and two.mean_nodes_per_region == 262
    assert three.pods_per_region == 1570 and three.nodes_per_region == 785
    assert two.monthly_at_peak_size > alone.monthly_at_peak_size
    per_million = alone.monthly_at_mean / (10_000 * 730 * 3600 / 1e6)
    out = cost.rate_summary(plan, alone)
    assert f"per million texts: ${per_million:,.2f} autoscaled" in out
    assert "3140 pods = 1570 model nodes per region" in out


def test_regions_what_if_adds_each_regions_own_fixed_costs(plans: dict) -> None:
    """`REGIONS=n` pays every served region's cluster fee, system pool and NAT (at minimum scale,
    worked by hand as above): fewer regions than prod's two drop us-central1's, more repeat
    europe-west1's (the stack's own prices) for each region beyond the plan's."""
    plan = plans["prod"]
    one, two, three = (cost.size_for_rate(plan, 10_000, regions=n) for n in (1, 2, 3))
    # Minimum scale: 1 system node; NAT for it and the model pool's 3 minimum nodes.
    europe = 0.10 * 730 + E2_STANDARD_2 * 730 + DISK_50GB_BALANCED + _nat_month(4)
    us = 0.10 * 730 + (E2_STANDARD_2 * 730 + DISK_50GB_BALANCED) / EU + _nat_month(4)
    assert two.rest_monthly - one.rest_monthly == pytest.approx(us)
    assert three.rest_monthly - two.rest_monthly == pytest.approx(europe)
    assert (one.served_from, two.served_from) == (
        ("europe-west1",),
        ("europe-west1", "us-central1"),
    )
    assert three.served_from == ("europe-west1", "us-central1", "europe-west1")
    # Model nodes at each region's own price: us-central1's is europe-west1's / 1.10.
    node = two.node_monthly
    assert node["us-central1"] == pytest.approx(node["europe-west1"] / EU)
    assert two.monthly_at_mean == pytest.approx(
        two.mean_nodes_per_region * (node["europe-west1"] + node["us-central1"]) + two.rest_monthly
    )
    assert "1 region(s) beyond the plan's 2 priced as europe-west1" in cost.rate_summary(
        plan, three
    )


def test_each_region_pays_its_own_nat_for_its_own_nodes(plans: dict) -> None:
    """Prod's two NATs: each bills the 4-13 VMs of its region, not the stack's 8-26."""
    nats = [i for i in cost.estimate(plans["prod"], cost.USAGE["prod"]) if i.item == "Cloud NAT"]
    assert sorted(i.region for i in nats) == ["europe-west1", "us-central1"]
    for nat in nats:
        assert (nat.low, nat.high) == pytest.approx((_nat_month(4), _nat_month(13)))
