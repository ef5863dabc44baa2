"""Monthly cost estimate of one stack, read from its plan (`build/plan/<stack>.json`).

    python -m infra.cost --stack dev     # or: make cost STACK=dev (runs `make plan` first)

What is priced comes from the plan (machine types, spot, node counts, disks, GPUs, cluster mode,
gateways, Cloud Armor rules, NAT, KMS keys, log sinks and their retention, alert conditions);
how much traffic and data flow through it is a usage assumption per stack (`USAGE`, overridable
on the command line). Autoscaled capacity is priced twice: at the minimum and at the maximum size.

Prices: Google Cloud list prices in USD for us-central1, without committed-use or sustained-use
discounts, as compiled on PRICES_AS_OF from the public pricing pages named next to each entry;
other regions apply REGION_FACTORS. They are an estimate for budgeting, not a quote: prices change,
so check https://cloud.google.com/products/calculator before committing to a number.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

PRICES_AS_OF = "2026-11-28"
HOURS_PER_MONTH = 730
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600

# --- price table (USD, us-central1) -----------------------------------------------------------

# https://cloud.google.com/compute/vm-instance-pricing: on-demand per vCPU-hour and per GiB-hour.
FAMILY_RATES: Mapping[str, tuple[float, float]] = {
    "e2": (0.021811, 0.002923),
    "n1": (0.031611, 0.004237),
    "n2": (0.031611, 0.004237),
    "n2d": (0.027502, 0.003686),
    "t2d": (0.027502, 0.003686),
    "c3": (0.034650, 0.003938),
    "g2": (0.022360, 0.002617),
}
# GiB of memory per vCPU for each predefined shape; n1 has its own ratios.
SHAPE_MEMORY: Mapping[str, float] = {"standard": 4.0, "highmem": 8.0, "highcpu": 1.0}
N1_SHAPE_MEMORY: Mapping[str, float] = {"standard": 3.75, "highmem": 6.5, "highcpu": 0.9}
# Shared-core E2 types: (billed vCPUs, GiB).
SHARED_CORE: Mapping[str, tuple[float, float]] = {
    "e2-micro": (0.25, 1.0),
    "e2-small": (0.5, 2.0),
    "e2-medium": (1.0, 4.0),
}
# g2 machine types include their L4 GPUs (https://cloud.google.com/compute/docs/gpus).
G2_GPUS: Mapping[int, int] = {4: 1, 8: 1, 12: 1, 16: 1, 24: 2, 32: 1, 48: 4, 96: 8}
# https://cloud.google.com/compute/gpus-pricing: per GPU-hour, on-demand.
GPU_HOURLY: Mapping[str, float] = {
    "nvidia-l4": 0.560500,
    "nvidia-tesla-t4": 0.350000,
    "nvidia-tesla-a100": 2.933908,
}
SPOT_FRACTION = 0.40
"""Spot VMs and GPUs, as a share of on-demand. Spot prices move (Google advertises 60-91% off);
0.40 is the least discount, so the estimate errs high."""
# https://cloud.google.com/compute/disks-image-pricing: per GB-month of provisioned boot disk.
DISK_GB_MONTH: Mapping[str, float] = {
    "pd-standard": 0.040,
    "pd-balanced": 0.100,
    "pd-ssd": 0.170,
    "hyperdisk-balanced": 0.080,
}
# https://cloud.google.com/kubernetes-engine/pricing: cluster management fee; the free tier
# credits one zonal (or Autopilot) cluster per billing account.
GKE_CLUSTER_HOURLY = 0.10
# https://cloud.google.com/vpc/network-pricing: global external Application Load Balancer.
LB_FORWARDING_RULE_HOURLY = 0.025
LB_FORWARDING_RULES_PER_GATEWAY = 2  # HTTPS, plus HTTP for the redirect
LB_DATA_PER_GB = 0.008
# https://cloud.google.com/armor/pricing (Standard tier).
ARMOR_POLICY_MONTH = 5.00
ARMOR_RULE_MONTH = 1.00
ARMOR_PER_MILLION_REQUESTS = 0.75
# https://cloud.google.com/nat/pricing: per VM-hour (up to 32 VMs) and per GB processed.
NAT_VM_HOURLY = 0.0014
NAT_DATA_PER_GB = 0.045
# https://cloud.google.com/kms/pricing: per active software key version per month.
KMS_KEY_VERSION_MONTH = 0.06
# https://cloud.google.com/artifact-registry/pricing: storage beyond 0.5 GB free.
REGISTRY_GB_MONTH = 0.10
REGISTRY_FREE_GB = 0.5
# https://cloud.google.com/stackdriver/pricing: Cloud Logging ingestion (50 GiB/project/month
# free), Managed Prometheus samples, uptime checks (1M executions/project/month free), and
# alerting per condition.
LOG_INGESTION_PER_GIB = 0.50
LOG_FREE_GIB = 50.0
PROMETHEUS_PER_MILLION_SAMPLES = 0.06
UPTIME_PER_1000_EXECUTIONS = 0.30
UPTIME_FREE_EXECUTIONS = 1_000_000
UPTIME_DEFAULT_REGIONS = 6
ALERT_CONDITION_MONTH = 0.10
# https://cloud.google.com/bigquery/pricing: streaming inserts (how log sinks write) and active
# storage (first 10 GiB free).
BIGQUERY_STREAMING_PER_GIB = 0.05
BIGQUERY_STORAGE_GIB_MONTH = 0.02
BIGQUERY_FREE_GIB = 10.0
# https://cloud.google.com/storage/pricing: regional storage per GiB-month by class.
STORAGE_CLASS_GIB_MONTH: Mapping[str, float] = {
    "STANDARD": 0.020,
    "NEARLINE": 0.010,
    "COLDLINE": 0.004,
    "ARCHIVE": 0.0012,
}
# https://cloud.google.com/pubsub/pricing: throughput beyond 10 GiB free.
PUBSUB_PER_TIB = 40.0
PUBSUB_FREE_GIB = 10.0
# Compute, disk and network list prices of a region relative to us-central1.
REGION_FACTORS: Mapping[str, float] = {
    "us-central1": 1.00,
    "us-east1": 1.00,
    "us-west1": 1.00,
    "europe-west1": 1.10,
    "europe-west4": 1.10,
}


@dataclass(frozen=True)
class Usage:
    """Traffic and data volume a stack is assumed to carry each month (not in the plan)."""

    requests_millions: float
    bytes_per_request: int
    """Request plus response, through the load balancer."""
    log_gib: float
    """Logs ingested after health-check exclusions (service + load balancer request logs)."""
    image_gib_stored: float
    prometheus_series_per_pod: int
    scrape_interval_seconds: int = 30
    nat_gib: float = 5.0


USAGE: Mapping[str, Usage] = {
    "dev": Usage(
        requests_millions=1,
        bytes_per_request=2048,
        log_gib=10,
        image_gib_stored=15,
        prometheus_series_per_pod=400,
    ),
    "prod": Usage(
        requests_millions=100,
        bytes_per_request=2048,
        log_gib=250,
        image_gib_stored=60,
        prometheus_series_per_pod=400,
    ),
}


@dataclass(frozen=True)
class LineItem:
    """One row of the estimate; `low`/`high` are USD per month at minimum/maximum scale."""

    item: str
    basis: str
    low: float
    high: float


class PlanError(ValueError):
    """The plan holds something the price table cannot price."""


# --- reading the plan -------------------------------------------------------------------------


def resources_of(plan: Mapping[str, Any], type_token: str) -> list[Mapping[str, Any]]:
    return [r["inputs"] for r in plan["resources"] if r["type"] == type_token]


def region_of(plan: Mapping[str, Any]) -> str:
    """The cluster's region (a zonal cluster's location minus its zone letter)."""
    clusters = resources_of(plan, "gcp:container/cluster:Cluster")
    if len(clusters) != 1:
        raise PlanError(f"expected one GKE cluster in the plan, found {len(clusters)}")
    location = clusters[0]["location"]
    return location if location.count("-") == 1 else location.rsplit("-", 1)[0]


def machine_shape(machine_type: str) -> tuple[str, float, float, int]:
    """(family, billed vCPUs, GiB memory, bundled GPUs) of a predefined machine type."""
    if machine_type in SHARED_CORE:
        vcpus, memory = SHARED_CORE[machine_type]
        return "e2", vcpus, memory, 0
    match = re.fullmatch(r"([a-z0-9]+)-(standard|highmem|highcpu)-(\d+)", machine_type)
    if not match or match.group(1) not in FAMILY_RATES:
        raise PlanError(f"no price for machine type {machine_type!r}; add it to infra/cost.py")
    family, shape, vcpus = match.group(1), match.group(2), int(match.group(3))
    per_vcpu = (N1_SHAPE_MEMORY if family == "n1" else SHAPE_MEMORY)[shape]
    gpus = G2_GPUS.get(vcpus, 0) if family == "g2" else 0
    return family, float(vcpus), vcpus * per_vcpu, gpus


def node_hourly(node_config: Mapping[str, Any]) -> float:
    """On-demand or spot price of one node: vCPUs, memory and GPUs (disks are priced apart)."""
    family, vcpus, memory, bundled_gpus = machine_shape(node_config["machineType"])
    cpu_rate, memory_rate = FAMILY_RATES[family]
    hourly = vcpus * cpu_rate + memory * memory_rate + bundled_gpus * GPU_HOURLY["nvidia-l4"]
    for accelerator in node_config.get("guestAccelerators") or []:
        if accelerator["type"] not in GPU_HOURLY:
            raise PlanError(f"no price for GPU {accelerator['type']!r}; add it to infra/cost.py")
        hourly += accelerator["count"] * GPU_HOURLY[accelerator["type"]]
    return hourly * (SPOT_FRACTION if node_config.get("spot") else 1.0)


def node_count_range(pool: Mapping[str, Any]) -> tuple[int, int]:
    """Nodes at minimum and maximum scale, over all of the pool's zones."""
    autoscaling = pool.get("autoscaling")
    zones = max(len(pool.get("nodeLocations") or []), 1)
    if autoscaling:
        if "totalMinNodeCount" in autoscaling or "totalMaxNodeCount" in autoscaling:
            return autoscaling.get("totalMinNodeCount", 0), autoscaling["totalMaxNodeCount"]
        return autoscaling.get("minNodeCount", 0) * zones, autoscaling["maxNodeCount"] * zones
    fixed = pool.get("nodeCount", pool.get("initialNodeCount", 1)) * zones
    return fixed, fixed


def hpa_replica_range(plan: Mapping[str, Any]) -> tuple[int, int]:
    """Serving pods at minimum and maximum scale, summed over every HorizontalPodAutoscaler."""
    hpas = [
        r["inputs"]["spec"]
        for r in plan["resources"]
        if r["type"].endswith(":HorizontalPodAutoscaler")
    ]
    return sum(h.get("minReplicas", 1) for h in hpas), sum(h["maxReplicas"] for h in hpas)


# --- pricing ----------------------------------------------------------------------------------


def compute_items(plan: Mapping[str, Any], factor: float) -> Iterable[LineItem]:
    for cluster in resources_of(plan, "gcp:container/cluster:Cluster"):
        fee = GKE_CLUSTER_HOURLY * HOURS_PER_MONTH
        zonal = cluster["location"].count("-") == 2
        yield LineItem(
            "GKE cluster management",
            "zonal" if zonal else "regional",
            fee,
            fee,
        )
        if zonal:
            yield LineItem(
                "GKE free tier credit", "one zonal cluster per billing account", -fee, -fee
            )
    for pool in resources_of(plan, "gcp:container/nodePool:NodePool"):
        config = pool["nodeConfig"]
        low_nodes, high_nodes = node_count_range(pool)
        hourly = node_hourly(config) * factor
        capacity = "spot" if config.get("spot") else "on-demand"
        yield LineItem(
            f"nodes {config['machineType']} ({capacity})",
            f"{low_nodes}-{high_nodes} nodes x {HOURS_PER_MONTH} h x ${hourly:.4f}",
            low_nodes * hourly * HOURS_PER_MONTH,
            high_nodes * hourly * HOURS_PER_MONTH,
        )
        disk_type = config.get("diskType", "pd-balanced")
        disk_gb = config.get("diskSizeGb", 100)
        per_node = disk_gb * DISK_GB_MONTH[disk_type] * factor
        yield LineItem(
            f"boot disks {disk_type}",
            f"{low_nodes}-{high_nodes} x {disk_gb} GB",
            low_nodes * per_node,
            high_nodes * per_node,
        )


def network_items(plan: Mapping[str, Any], usage: Usage, factor: float) -> Iterable[LineItem]:
    gateways = [r for r in plan["resources"] if r["type"].endswith(":Gateway")]
    if gateways:
        rules = len(gateways) * LB_FORWARDING_RULES_PER_GATEWAY
        traffic_gb = usage.requests_millions * 1e6 * usage.bytes_per_request / 1e9
        cost = rules * LB_FORWARDING_RULE_HOURLY * HOURS_PER_MONTH + traffic_gb * LB_DATA_PER_GB
        yield LineItem(
            "load balancer", f"{rules} forwarding rules, {traffic_gb:.1f} GB", cost, cost
        )
    for policy in resources_of(plan, "gcp:compute/securityPolicy:SecurityPolicy"):
        rules = len(policy.get("rules") or [])
        cost = (
            ARMOR_POLICY_MONTH
            + rules * ARMOR_RULE_MONTH
            + usage.requests_millions * ARMOR_PER_MILLION_REQUESTS
        )
        yield LineItem("Cloud Armor", f"1 policy, {rules} rules", cost, cost)
    nats = resources_of(plan, "gcp:compute/routerNat:RouterNat")
    if nats:
        pools = resources_of(plan, "gcp:container/nodePool:NodePool")
        low_vms = sum(node_count_range(pool)[0] for pool in pools)
        high_vms = sum(node_count_range(pool)[1] for pool in pools)
        data = usage.nat_gib * NAT_DATA_PER_GB * factor

        def nat(vms: int) -> float:
            return min(vms, 32) * NAT_VM_HOURLY * HOURS_PER_MONTH * factor + data

        yield LineItem(
            "Cloud NAT",
            f"{low_vms}-{high_vms} VMs, {usage.nat_gib} GiB",
            nat(low_vms),
            nat(high_vms),
        )


def platform_items(plan: Mapping[str, Any], usage: Usage) -> Iterable[LineItem]:
    keys = resources_of(plan, "gcp:kms/cryptoKey:CryptoKey")
    if keys:
        cost = len(keys) * KMS_KEY_VERSION_MONTH
        yield LineItem("KMS keys", f"{len(keys)} keys", cost, cost)
    if resources_of(plan, "gcp:artifactregistry/repository:Repository"):
        cost = max(usage.image_gib_stored - REGISTRY_FREE_GB, 0.0) * REGISTRY_GB_MONTH
        yield LineItem("Artifact Registry", f"{usage.image_gib_stored} GiB stored", cost, cost)


def observability_items(plan: Mapping[str, Any], usage: Usage) -> Iterable[LineItem]:
    ingestion = max(usage.log_gib - LOG_FREE_GIB, 0.0) * LOG_INGESTION_PER_GIB
    yield LineItem("Cloud Logging ingestion", f"{usage.log_gib} GiB", ingestion, ingestion)

    sinks = resources_of(plan, "gcp:logging/projectSink:ProjectSink")
    destinations = [sink["destination"] for sink in sinks]
    if any(d.startswith("bigquery.googleapis.com/") for d in destinations):
        datasets = resources_of(plan, "gcp:bigquery/dataset:Dataset")
        days = max((d.get("defaultPartitionExpirationMs", 0) for d in datasets), default=0) / 864e5
        stored = usage.log_gib * days / 30
        cost = usage.log_gib * BIGQUERY_STREAMING_PER_GIB + (
            max(stored - BIGQUERY_FREE_GIB, 0.0) * BIGQUERY_STORAGE_GIB_MONTH
        )
        yield LineItem("BigQuery log sink", f"{stored:.0f} GiB kept {days:.0f} days", cost, cost)
    if any(d.startswith("storage.googleapis.com/") for d in destinations):
        for bucket in resources_of(plan, "gcp:storage/bucket:Bucket"):
            # dev's archive has no retention policy (it must stay destroyable): its lifecycle
            # delete rule alone bounds it.
            if bucket.get("retentionPolicy") or bucket.get("lifecycleRules"):
                cost, stored = archive_monthly(bucket, usage.log_gib)
                yield LineItem(
                    "log archive bucket", f"{stored:.0f} GiB at steady state", cost, cost
                )
    if any(d.startswith("pubsub.googleapis.com/") for d in destinations):
        cost = max(usage.log_gib - PUBSUB_FREE_GIB, 0.0) / 1024 * PUBSUB_PER_TIB
        yield LineItem("Pub/Sub log forwarder", f"{usage.log_gib} GiB", cost, cost)

    low_pods, high_pods = hpa_replica_range(plan)
    samples_per_pod = (
        usage.prometheus_series_per_pod * SECONDS_PER_MONTH / usage.scrape_interval_seconds
    )
    per_pod = samples_per_pod / 1e6 * PROMETHEUS_PER_MILLION_SAMPLES
    yield LineItem(
        "Managed Prometheus",
        f"{low_pods}-{high_pods} pods x {usage.prometheus_series_per_pod} series",
        low_pods * per_pod,
        high_pods * per_pod,
    )
    conditions = sum(
        len(policy.get("conditions") or [])
        for policy in resources_of(plan, "gcp:monitoring/alertPolicy:AlertPolicy")
    )
    if conditions:
        cost = conditions * ALERT_CONDITION_MONTH
        yield LineItem("alerting", f"{conditions} conditions", cost, cost)
    checks = resources_of(plan, "gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig")
    if checks:
        executions = sum(
            SECONDS_PER_MONTH
            / int(check.get("period", "60s").removesuffix("s"))
            * len(check.get("selectedRegions") or range(UPTIME_DEFAULT_REGIONS))
            for check in checks
        )
        cost = max(executions - UPTIME_FREE_EXECUTIONS, 0) / 1000 * UPTIME_PER_1000_EXECUTIONS
        yield LineItem("uptime checks", f"{executions:,.0f} executions", cost, cost)


def archive_monthly(bucket: Mapping[str, Any], gib_per_month: float) -> tuple[float, float]:
    """(USD/month, GiB stored) once the archive is full: each month of logs sits in the storage
    class its age puts it in by the bucket's lifecycle rules, until the delete rule or retention."""
    retention_days = (bucket.get("retentionPolicy") or {}).get("retentionPeriod", 0) / 86400
    transitions = sorted(
        (rule["condition"]["age"], rule["action"]["storageClass"])
        for rule in bucket.get("lifecycleRules") or []
        if rule["action"]["type"] == "SetStorageClass"
    )
    deletes = [
        rule["condition"]["age"]
        for rule in bucket.get("lifecycleRules") or []
        if rule["action"]["type"] == "Delete"
    ]
    # Objects live until the first delete rule, never less than the retention policy allows;
    # without a delete rule the archive grows forever and is priced at the retention period.
    kept_days = max(min(deletes, default=retention_days), retention_days)
    months = math.ceil(kept_days / 30)
    cost = 0.0
    for month in range(months):
        age = month * 30
        storage_class = bucket.get("storageClass", "STANDARD")
        for threshold, target in transitions:
            if age >= threshold:
                storage_class = target
        cost += gib_per_month * STORAGE_CLASS_GIB_MONTH[storage_class]
    return cost, gib_per_month * months


def estimate(plan: Mapping[str, Any], usage: Usage) -> list[LineItem]:
    """Every priced line of a plan; raises PlanError for anything the table cannot price."""
    region = region_of(plan)
    if region not in REGION_FACTORS:
        raise PlanError(f"no price factor for region {region!r}; add it to REGION_FACTORS")
    factor = REGION_FACTORS[region]
    return [
        *compute_items(plan, factor),
        *network_items(plan, usage, factor),
        *platform_items(plan, usage),
        *observability_items(plan, usage),
    ]


def render(items: list[LineItem], title: str) -> str:
    """A plain-text table with a total row."""
    rows = [(i.item, i.basis, f"{i.low:,.2f}", f"{i.high:,.2f}") for i in items]
    total_low = sum(i.low for i in items)
    total_high = sum(i.high for i in items)
    header = ("item", "basis", "USD/month min", "USD/month max")
    footer = ("TOTAL", "", f"{total_low:,.2f}", f"{total_high:,.2f}")
    widths = [max(len(row[col]) for row in [header, *rows, footer]) for col in range(4)]

    def line(row: tuple[str, str, str, str]) -> str:
        left = "  ".join(cell.ljust(width) for cell, width in zip(row[:2], widths[:2], strict=True))
        right = "  ".join(
            cell.rjust(width) for cell, width in zip(row[2:], widths[2:], strict=True)
        )
        return f"{left}  {right}"

    rule = "-" * len(line(header))
    return "\n".join([title, rule, line(header), rule, *map(line, rows), rule, line(footer)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, choices=sorted(USAGE))
    parser.add_argument("--plan", type=Path, help="default: build/plan/<stack>.json")
    parser.add_argument("--requests-millions", type=float, help="override the usage assumption")
    parser.add_argument("--log-gib", type=float, help="override the usage assumption")
    options = parser.parse_args(argv)
    plan_path = options.plan or Path("build/plan") / f"{options.stack}.json"
    if not plan_path.exists():
        print(
            f"{plan_path} not found: run `make plan STACK={options.stack}` first", file=sys.stderr
        )
        return 2
    usage = USAGE[options.stack]
    if options.requests_millions is not None:
        usage = replace(usage, requests_millions=options.requests_millions)
    if options.log_gib is not None:
        usage = replace(usage, log_gib=options.log_gib)
    plan = json.loads(plan_path.read_text())
    try:
        items = estimate(plan, usage)
    except PlanError as error:
        print(f"cannot estimate {plan_path}: {error}", file=sys.stderr)
        return 1
    title = (
        f"Estimated monthly cost of stack {options.stack!r} in {region_of(plan)} "
        f"(list prices as of {PRICES_AS_OF}, {usage.requests_millions:g}M requests, "
        f"{usage.log_gib:g} GiB logs; see infra/cost.py)"
    )
    print(render(items, title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
