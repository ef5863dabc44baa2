"""`python -m infra.cost`: prices from the table applied to what a plan declares."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infra import cost

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


def test_spot_nodes_cost_the_documented_share_of_on_demand() -> None:
    on_demand = _item(
        cost.estimate(_plan("us-central1-a", _pool("n2-standard-8", 2, 2)), USAGE), "nodes"
    )
    spot = _item(
        cost.estimate(_plan("us-central1-a", _pool("n2-standard-8", 2, 2, spot=True)), USAGE),
        "nodes",
    )
    assert spot.item == "nodes n2-standard-8 (spot)"
    assert spot.low == pytest.approx(on_demand.low * cost.SPOT_FRACTION)


def test_gpus_are_added_to_their_node_price() -> None:
    accelerators = [{"type": "nvidia-tesla-t4", "count": 2}]
    plain = _item(
        cost.estimate(_plan("us-central1-a", _pool("n1-standard-8", 1, 1)), USAGE), "nodes"
    )
    with_gpus = _item(
        cost.estimate(
            _plan("us-central1-a", _pool("n1-standard-8", 1, 1, guestAccelerators=accelerators)),
            USAGE,
        ),
        "nodes",
    )
    assert with_gpus.low - plain.low == pytest.approx(2 * 0.35 * HOURS)


def test_zonal_cluster_fee_is_credited_by_the_free_tier_but_regional_is_not() -> None:
    zonal = cost.estimate(_plan("us-central1-a"), USAGE)
    regional = cost.estimate(_plan("us-central1"), USAGE)
    assert sum(i.low for i in zonal if "GKE" in i.item) == 0
    assert sum(i.low for i in regional if "GKE" in i.item) == pytest.approx(0.10 * HOURS)


def test_region_factor_scales_compute() -> None:
    us = _item(cost.estimate(_plan("us-central1-a", _pool("e2-standard-2", 1, 1)), USAGE), "nodes")
    eu = _item(cost.estimate(_plan("europe-west1-b", _pool("e2-standard-2", 1, 1)), USAGE), "nodes")
    assert eu.low == pytest.approx(us.low * cost.REGION_FACTORS["europe-west1"])


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
    assert lb.low == pytest.approx(2 * 0.025 * HOURS + 10e6 * 1000 / 1e9 * 0.008)
    assert _item(items, "Cloud Armor").low == pytest.approx(5 + 3 * 1 + 10 * 0.75)
    assert _item(items, "Cloud Logging ingestion").low == pytest.approx((60 - 50) * 0.50)
    prometheus = _item(items, "Managed Prometheus")
    per_pod = 100 * cost.SECONDS_PER_MONTH / 30 / 1e6 * 0.06
    assert (prometheus.low, prometheus.high) == pytest.approx((2 * per_pod, 6 * per_pod))
    assert _item(items, "alerting").low == pytest.approx(2 * 0.10)


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
            [sys.executable, "-m", "infra.cost", "--stack", stack, "--plan", str(path)],
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
        low, high = (float(x.replace(",", "")) for x in lines[-1].split()[1:])
        assert 0 < low <= high
        totals[stack] = low
    assert totals["prod"] > totals["dev"]
