"""Monthly cost estimate of one stack, read from its plan (`build/plan/<stack>.json`).

    python -m tools.cost --stack dev     # or: make cost STACK=dev (runs `make plan` first)

What is priced comes from the plan (machine types, spot, node counts, disks, GPUs, cluster mode,
gateways, Cloud Armor rules, NAT, KMS keys, log sinks and their retention, alert conditions);
how much traffic and data flow through it is a usage assumption per stack (`USAGE`, overridable
on the command line). Autoscaled capacity is priced twice: at the minimum and at the maximum size.

Prices: Google Cloud list prices in USD for us-central1, as compiled on PRICES_AS_OF from the
public pricing pages named next to each entry; other regions apply REGION_FACTORS (compute, disk,
load balancing; Cloud NAT is priced the same everywhere). Sustained-use discounts, which Compute
Engine applies by itself to on-demand N1/N2/N2D nodes, are included (each node priced for a full
month at its scale); committed-use discounts are not. Spot prices are a dated share of on-demand
per region (SPOT_SHARES, overridable with --spot-share). They are an estimate for budgeting, not a
quote: prices change, so check https://cloud.google.com/products/calculator before committing.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from infra.machines import BUNDLED_GPU_TYPE, MachineShape, UnknownMachineType, shape_of
from service.catalog import Runtime
from tools.capacity import PEAK_TO_MEAN, NodeThroughput, node_throughputs, serving_plan
from tools.plan_document import (
    HOURS_PER_MONTH,
    PlanError,
    hpa_replica_range,
    location_region,
    node_count_range,
    region_of,
    regions_of,
    resources_of,
)

PRICES_AS_OF = "2026-12-02"
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600

# --- price table (USD, us-central1) -----------------------------------------------------------

# https://cloud.google.com/compute/vm-instance-pricing: on-demand per vCPU-hour and per GiB-hour,
# for each family of the machine table (infra/machines.py: shapes, GPUs).
FAMILY_RATES: Mapping[str, tuple[float, float]] = {
    "e2": (0.021811, 0.002923),
    "n1": (0.031611, 0.004237),
    "n2": (0.031611, 0.004237),
    "n2d": (0.027502, 0.003686),
    "t2d": (0.027502, 0.003686),
    "c3": (0.034650, 0.003938),
    # G2's own rates: g2-standard-4 = 4 x 0.024988 + 16 x 0.002927 + one L4 = $0.7068/h.
    "g2": (0.024988, 0.002927),
}
# https://cloud.google.com/compute/docs/sustained-use-discounts: applied automatically to
# on-demand vCPU and memory of these families; a full month earns the largest one (N1 30%,
# N2/N2D 20%). E2, T2D, C3 and G2 get none; spot VMs get none.
SUSTAINED_USE_DISCOUNT: Mapping[str, float] = {"n1": 0.30, "n2": 0.20, "n2d": 0.20}
# https://cloud.google.com/compute/gpus-pricing: per GPU-hour, on-demand.
GPU_HOURLY: Mapping[str, float] = {
    "nvidia-l4": 0.560500,
    "nvidia-tesla-t4": 0.350000,
    "nvidia-tesla-a100": 2.933908,
}


@dataclass(frozen=True)
class SpotShare:
    """Spot price as a share of on-demand in one region, and when it was read."""

    share: float
    as_of: str


# https://cloud.google.com/spot-vms/pricing: spot prices move (up to once a day) and differ by
# region; these are N2 spot / on-demand as read on `as_of` (the committed stacks' model pools).
# Override with --spot-share when a region or family differs; a region not listed is an error.
SPOT_SHARES: Mapping[str, SpotShare] = {
    "europe-west1": SpotShare(0.12, "2026-12-02"),
    "us-central1": SpotShare(0.29, "2026-12-02"),
}
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
# Forwarding rules are billed per project: the first five together at one flat hourly rate,
# each one after that on its own.
LB_FIRST_FIVE_RULES_HOURLY = 0.025
LB_EXTRA_RULE_HOURLY = 0.01
LB_FORWARDING_RULES_PER_GATEWAY = 2  # HTTPS, plus HTTP for the redirect
LB_DATA_PER_GB = 0.008
# https://cloud.google.com/armor/pricing. Standard: per policy, rule and request.
ARMOR_POLICY_MONTH = 5.00
ARMOR_RULE_MONTH = 1.00
ARMOR_PER_MILLION_REQUESTS = 0.75
# Adaptive Protection's full features (suggested rules, traffic attribution) need Cloud Armor
# Enterprise; Standard gives only its attack alerts. Enterprise Paygo: per project, plus per
# protected resource (backend service) after the first two; it bundles the policy, rule and
# request charges above. Its data-processing fee (per GiB sent to the internet) is not priced.
ARMOR_ENTERPRISE_PROJECT_MONTH = 200.0
ARMOR_ENTERPRISE_RESOURCE_MONTH = 200.0
ARMOR_ENTERPRISE_FREE_RESOURCES = 2
# https://cloud.google.com/nat/pricing: the same in every region. Per VM-hour up to 32 VMs (a
# flat gateway rate above), per NAT IP address-hour, and per GB processed. One auto-allocated
# NAT IP has 64,512 ports: at the default 64 ports per VM it serves 1,008 VMs.
NAT_VM_HOURLY = 0.0014
NAT_MAX_BILLED_VMS = 32
NAT_IP_HOURLY = 0.005
NAT_DATA_PER_GB = 0.045
NAT_PORTS_PER_IP = 64_512
NAT_DEFAULT_PORTS_PER_VM = 64
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
# https://cloud.google.com/pubsub/pricing: throughput beyond 10 GiB free; publishing and each
# subscription's delivery are billed alike.
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
    region: str | None = None
    """The serving region it is paid for (cluster, pools, NAT); None: once for the stack."""


def machine_shape(machine_type: str) -> MachineShape:
    """The machine table's shape of a node's type (infra/machines.py); a type outside it has no
    price."""
    try:
        return shape_of(machine_type)
    except UnknownMachineType as error:
        raise PlanError(f"no price for machine type {machine_type!r}: {error}") from None


def node_hourly(node_config: Mapping[str, Any], spot_share: float | None) -> float:
    """Price of one node for an hour of a full month: vCPUs and memory (less the sustained-use
    discount when on-demand) and GPUs; spot: a share of on-demand. Disks are priced apart."""
    shape = machine_shape(node_config["machineType"])
    cpu_rate, memory_rate = FAMILY_RATES[shape.family]
    spot = bool(node_config.get("spot"))
    machine = shape.vcpus * cpu_rate + shape.memory_gib * memory_rate
    if not spot:
        machine *= 1 - SUSTAINED_USE_DISCOUNT.get(shape.family, 0.0)
    gpus = shape.bundled_gpus * GPU_HOURLY[BUNDLED_GPU_TYPE]
    for accelerator in node_config.get("guestAccelerators") or []:
        kind, count = accelerator["type"], accelerator["count"]
        if kind not in GPU_HOURLY:
            raise PlanError(f"no price for GPU {kind!r}; add it to tools/cost.py")
        if kind == BUNDLED_GPU_TYPE:
            count = max(count - shape.bundled_gpus, 0)  # a g2 type's own L4s are already counted
        gpus += count * GPU_HOURLY[kind]
    if not spot:
        return machine + gpus
    if spot_share is None:
        raise PlanError("a spot pool needs a spot share: add its region to SPOT_SHARES")
    return (machine + gpus) * spot_share


# --- pricing ----------------------------------------------------------------------------------


def pool_region(plan: Mapping[str, Any], pool: Mapping[str, Any]) -> str:
    """A node pool's region: its location's; without one, the provider's (the stack's own)."""
    return location_region(pool.get("location") or region_of(plan))


@dataclass(frozen=True)
class RegionPrices:
    """What a region's compute costs relative to us-central1, and its spot share."""

    factor: float
    spot_share: float | None


def node_monthly(pool: Mapping[str, Any], prices: RegionPrices) -> float:
    """One node of a pool for a month in its region, boot disk included."""
    config = pool["nodeConfig"]
    disk = config.get("diskSizeGb", 100) * DISK_GB_MONTH[config.get("diskType", "pd-balanced")]
    return (node_hourly(config, prices.spot_share) * HOURS_PER_MONTH + disk) * prices.factor


def compute_items(
    plan: Mapping[str, Any], prices: Mapping[str, RegionPrices]
) -> Iterable[LineItem]:
    for cluster in resources_of(plan, "gcp:container/cluster:Cluster"):
        fee = GKE_CLUSTER_HOURLY * HOURS_PER_MONTH
        region = location_region(cluster["location"])
        zonal = cluster["location"] != region
        yield LineItem("GKE cluster management", "zonal" if zonal else "regional", fee, fee, region)
        if zonal:
            yield LineItem(
                "GKE free tier credit", "one zonal cluster per billing account", -fee, -fee, region
            )
    for pool in resources_of(plan, "gcp:container/nodePool:NodePool"):
        config = pool["nodeConfig"]
        region = pool_region(plan, pool)
        factor, spot_share = prices[region].factor, prices[region].spot_share
        low_nodes, high_nodes = node_count_range(pool)
        hourly = node_hourly(config, spot_share) * factor
        family = machine_shape(config["machineType"]).family
        if config.get("spot"):
            capacity, terms = "spot", f" ({spot_share:.0%} of on-demand)"
        else:
            discount = SUSTAINED_USE_DISCOUNT.get(family, 0.0)
            capacity, terms = "on-demand", f" ({discount:.0%} sustained use)" if discount else ""
        yield LineItem(
            f"nodes {config['machineType']} ({capacity})",
            f"{low_nodes}-{high_nodes} nodes x {HOURS_PER_MONTH} h x ${hourly:.4f}{terms}",
            low_nodes * hourly * HOURS_PER_MONTH,
            high_nodes * hourly * HOURS_PER_MONTH,
            region,
        )
        disk_type = config.get("diskType", "pd-balanced")
        disk_gb = config.get("diskSizeGb", 100)
        per_node = disk_gb * DISK_GB_MONTH[disk_type] * factor
        yield LineItem(
            f"boot disks {disk_type}",
            f"{low_nodes}-{high_nodes} x {disk_gb} GB",
            low_nodes * per_node,
            high_nodes * per_node,
            region,
        )


def forwarding_rules_hourly(rules: int) -> float:
    """The project's forwarding rules: the first five at one flat rate, then each on its own."""
    if rules == 0:
        return 0.0
    return LB_FIRST_FIVE_RULES_HOURLY + max(rules - 5, 0) * LB_EXTRA_RULE_HOURLY


def adaptive_protection_on(policy: Mapping[str, Any]) -> bool:
    config = policy.get("adaptiveProtectionConfig") or {}
    return bool((config.get("layer7DdosDefenseConfig") or {}).get("enable"))


def protected_resources(plan: Mapping[str, Any]) -> int:
    """Backend services with a Cloud Armor policy: one per GCPBackendPolicy that names one."""
    policies = [r["inputs"] for r in plan["resources"] if r["type"].endswith(":GCPBackendPolicy")]
    return sum(bool(p["spec"]["default"].get("securityPolicy")) for p in policies)


def nat_ips(nat: Mapping[str, Any], vms: int) -> int:
    """NAT IPs in use: the listed ones, or as many as auto-allocation needs for the VMs' ports."""
    if nat.get("natIpAllocateOption") == "MANUAL_ONLY":
        return len(nat.get("natIps") or [])
    ports = vms * nat.get("minPortsPerVm", NAT_DEFAULT_PORTS_PER_VM)
    return max(math.ceil(ports / NAT_PORTS_PER_IP), 1)


def network_items(plan: Mapping[str, Any], usage: Usage) -> Iterable[LineItem]:
    gateways = [r for r in plan["resources"] if r["type"].endswith(":Gateway")]
    if gateways:
        rules = len(gateways) * LB_FORWARDING_RULES_PER_GATEWAY
        traffic_gb = usage.requests_millions * 1e6 * usage.bytes_per_request / 1e9
        cost = forwarding_rules_hourly(rules) * HOURS_PER_MONTH + traffic_gb * LB_DATA_PER_GB
        yield LineItem(
            "load balancer", f"{rules} forwarding rules, {traffic_gb:.1f} GB", cost, cost
        )
    for policy in resources_of(plan, "gcp:compute/securityPolicy:SecurityPolicy"):
        rules = len(policy.get("rules") or [])
        if adaptive_protection_on(policy):
            resources = protected_resources(plan)
            extra = max(resources - ARMOR_ENTERPRISE_FREE_RESOURCES, 0)
            cost = ARMOR_ENTERPRISE_PROJECT_MONTH + extra * ARMOR_ENTERPRISE_RESOURCE_MONTH
            basis = f"Enterprise Paygo (adaptive protection), {resources} protected resources"
            yield LineItem("Cloud Armor Enterprise", basis, cost, cost)
            continue
        cost = (
            ARMOR_POLICY_MONTH
            + rules * ARMOR_RULE_MONTH
            + usage.requests_millions * ARMOR_PER_MILLION_REQUESTS
        )
        yield LineItem("Cloud Armor", f"Standard, 1 policy, {rules} rules", cost, cost)
    for nat in resources_of(plan, "gcp:compute/routerNat:RouterNat"):
        # A NAT serves the nodes of its own region only (without one: the provider's).
        nat_region = nat.get("region") or region_of(plan)
        pools = [
            pool
            for pool in resources_of(plan, "gcp:container/nodePool:NodePool")
            if pool_region(plan, pool) == nat_region
        ]
        low_vms = sum(node_count_range(pool)[0] for pool in pools)
        high_vms = sum(node_count_range(pool)[1] for pool in pools)
        data = usage.nat_gib * NAT_DATA_PER_GB

        def monthly(vms: int, nat: Mapping[str, Any] = nat, data: float = data) -> float:
            gateway = min(vms, NAT_MAX_BILLED_VMS) * NAT_VM_HOURLY
            return (gateway + nat_ips(nat, vms) * NAT_IP_HOURLY) * HOURS_PER_MONTH + data

        yield LineItem(
            "Cloud NAT",
            f"{low_vms}-{high_vms} VMs, {nat_ips(nat, high_vms)} IP, {usage.nat_gib} GiB",
            monthly(low_vms),
            monthly(high_vms),
            nat_region,
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
        # Published once, delivered once per subscription (at least the forwarder's).
        deliveries = max(len(resources_of(plan, "gcp:pubsub/subscription:Subscription")), 1)
        throughput = usage.log_gib * (1 + deliveries)
        cost = max(throughput - PUBSUB_FREE_GIB, 0.0) / 1024 * PUBSUB_PER_TIB
        basis = f"{usage.log_gib} GiB published + delivered {deliveries}x"
        yield LineItem("Pub/Sub log forwarder", basis, cost, cost)

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


def spot_share_of(region: str, override: float | None = None) -> float | None:
    """The spot share to price with: the override, else the region's dated table entry."""
    if override is not None:
        return override
    entry = SPOT_SHARES.get(region)
    return entry.share if entry else None


def region_prices(
    plan: Mapping[str, Any], spot_share: float | None = None
) -> dict[str, RegionPrices]:
    """Each serving region's prices; raises PlanError for a region the tables cannot price.
    `spot_share` overrides every region's SPOT_SHARES entry."""
    prices = {}
    pools = resources_of(plan, "gcp:container/nodePool:NodePool")
    for region in regions_of(plan):
        if region not in REGION_FACTORS:
            raise PlanError(f"no price factor for region {region!r}; add it to REGION_FACTORS")
        share = spot_share_of(region, spot_share)
        spot = any(
            pool["nodeConfig"].get("spot") for pool in pools if pool_region(plan, pool) == region
        )
        if share is None and spot:
            raise PlanError(
                f"no spot share for region {region!r}: add it to SPOT_SHARES or pass --spot-share"
            )
        prices[region] = RegionPrices(REGION_FACTORS[region], share)
    return prices


def estimate(
    plan: Mapping[str, Any], usage: Usage, spot_share: float | None = None
) -> list[LineItem]:
    """Every priced line of a plan, each region's at its own prices; raises PlanError for
    anything the tables cannot price. `spot_share` overrides the SPOT_SHARES entries."""
    items = [
        *compute_items(plan, region_prices(plan, spot_share)),
        *network_items(plan, usage),
        *platform_items(plan, usage),
        *observability_items(plan, usage),
    ]
    if len(regions_of(plan)) == 1:
        return items
    return [
        replace(item, basis=f"{item.region}: {item.basis}") if item.region else item
        for item in items
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


# --- sizing for a target rate, region by region ---------------------------------------------------


@dataclass(frozen=True)
class RateSizing:
    """A sustained rate served from `regions` regions, each able to carry the peak alone share
    when one region is lost (with one region: the whole peak)."""

    rate: float
    served_from: tuple[str, ...]
    """The regions, the plan's first; a what-if beyond the plan's repeats the stack's own."""
    pod_texts_per_s: float
    pods_per_node: int
    pods_per_region: int
    nodes_per_region: int
    mean_nodes_per_region: int
    node_monthly: Mapping[str, float]
    """One model node-month in each region, boot disk included."""
    rest_monthly: float
    """Everything but the model nodes, at minimum scale: the plan's stack-wide lines once and
    each region's fixed ones (cluster fee, system pool, NAT) per region served."""

    @property
    def regions(self) -> int:
        return len(self.served_from)

    @property
    def texts_millions_per_month(self) -> float:
        return self.rate * HOURS_PER_MONTH * 3600 / 1e6

    def _model_nodes_monthly(self, nodes_per_region: int) -> float:
        return sum(nodes_per_region * self.node_monthly[region] for region in self.served_from)

    @property
    def monthly_at_mean(self) -> float:
        return self._model_nodes_monthly(self.mean_nodes_per_region) + self.rest_monthly

    @property
    def monthly_at_peak_size(self) -> float:
        return self._model_nodes_monthly(self.nodes_per_region) + self.rest_monthly


def size_for_rate(plan: Mapping[str, Any], rate: float, regions: int) -> RateSizing:
    """Pods and nodes per region for `rate` texts/s sustained (peak = rate x PEAK_TO_MEAN), and
    what a month costs with the model pools autoscaled to the mean (each region a 1/n share) or
    held at the size that carries the peak with one region lost."""
    month_millions = rate * HOURS_PER_MONTH * 3600 / 1e6
    sized = serving_plan(plan, month_millions)
    survivors = max(regions - 1, 1)
    pods = math.ceil(sized.peak_texts_per_s / survivors / sized.pod_texts_per_s)
    mean_pods = math.ceil(rate / regions / sized.pod_texts_per_s)
    plan_regions = regions_of(plan)
    served = (*plan_regions[:regions], *[plan_regions[0]] * (regions - len(plan_regions)))
    prices = region_prices(plan)
    pools = resources_of(plan, "gcp:container/nodePool:NodePool")
    machine_type = plan["outputs"]["serving"]["machineType"]
    model_pools = [p for p in pools if p["nodeConfig"]["machineType"] == machine_type]
    node_month = {region: node_monthly(model_pools[0], prices[region]) for region in plan_regions}
    usage = replace(USAGE[plan["stack"]], requests_millions=month_millions)
    items = estimate(plan, usage)
    fixed = {
        region: sum(item.low for item in items if item.region == region)
        - sum(
            node_count_range(pool)[0] * node_month[region]
            for pool in model_pools
            if pool_region(plan, pool) == region
        )
        for region in plan_regions
    }
    rest = sum(item.low for item in items if item.region is None)
    rest += sum(fixed[region] for region in served)
    return RateSizing(
        rate=rate,
        served_from=served,
        pod_texts_per_s=sized.pod_texts_per_s,
        pods_per_node=sized.pods_per_node,
        pods_per_region=pods,
        nodes_per_region=math.ceil(pods / sized.pods_per_node),
        mean_nodes_per_region=math.ceil(mean_pods / sized.pods_per_node),
        node_monthly=node_month,
        rest_monthly=rest,
    )


def rate_summary(plan: Mapping[str, Any], sizing: RateSizing) -> str:
    serving = plan["outputs"]["serving"]
    per_million = sizing.monthly_at_mean / sizing.texts_millions_per_month
    at_peak = sizing.monthly_at_peak_size / sizing.texts_millions_per_month
    peak = sizing.rate * PEAK_TO_MEAN
    lost = "with one region lost" if sizing.regions > 1 else "alone"
    node_months = ", ".join(
        f"${sizing.node_monthly[region]:,.2f} in {region}"
        for region in dict.fromkeys(sizing.served_from)
    )
    planned = len(regions_of(plan))
    what_if = (
        f"; the {sizing.regions - planned} region(s) beyond the plan's {planned} priced as "
        f"{region_of(plan)}: its cluster fee, system pool and NAT at minimum scale"
        if sizing.regions > planned
        else ""
    )
    return "\n".join(
        [
            f"Sizing for {sizing.rate:g} texts/s sustained (peak {peak:g} texts/s = "
            f"x{PEAK_TO_MEAN:g}) over {sizing.regions} region(s), on "
            f"{serving['machineType']} running {serving['backend']} {serving['setting']}:",
            f"  one pod {sizing.pod_texts_per_s:.2f} texts/s, {sizing.pods_per_node} pods per node;"
            f" each region carries the peak {lost}: {sizing.pods_per_region} pods = "
            f"{sizing.nodes_per_region} model nodes per region "
            f"(HPA maxReplicas and pool maxNodes at least that).",
            f"  at the mean rate each region runs {sizing.mean_nodes_per_region} model nodes "
            f"(a node-month, disk included: {node_months}).",
            f"  monthly: ${sizing.monthly_at_mean:,.0f} autoscaled to the mean, "
            f"${sizing.monthly_at_peak_size:,.0f} held at peak size; the rest of the stack "
            f"${sizing.rest_monthly:,.0f} at minimum scale "
            f"({sizing.texts_millions_per_month:,.0f}M texts a month){what_if}.",
            f"  per million texts: ${per_million:,.2f} autoscaled, ${at_peak:,.2f} at peak size "
            "(one text per request).",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, choices=sorted(USAGE))
    parser.add_argument("--plan", type=Path, help="default: build/plan/<stack>.json")
    parser.add_argument("--requests-millions", type=float, help="override the usage assumption")
    parser.add_argument("--log-gib", type=float, help="override the usage assumption")
    parser.add_argument("--rate", type=float, help="also size for this many texts/s sustained")
    parser.add_argument("--regions", type=int, help="with --rate: regions (default: the plan's)")
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
        f"Estimated monthly cost of stack {options.stack!r} in {', '.join(regions_of(plan))} "
        f"(list prices as of {PRICES_AS_OF}, {usage.requests_millions:g}M requests, "
        f"{usage.log_gib:g} GiB logs; see tools/cost.py)"
    )
    print(render(items, title))
    print(serving_summary(plan, usage, items))
    serving = plan["outputs"]["serving"]
    print(family_comparison(Runtime(backend=serving["backend"], validated=serving["validated"])))
    if options.rate is not None:
        regions = options.regions or len(resources_of(plan, "gcp:container/cluster:Cluster"))
        print(rate_summary(plan, size_for_rate(plan, options.rate, regions)))
    return 0


def serving_summary(plan: Mapping[str, Any], usage: Usage, items: list[LineItem]) -> str:
    """The model pool at the expected peak, from the capacity row of what its pods run, and the
    cost of a million moderated texts (one text per request)."""
    sized = serving_plan(plan, usage.requests_millions)
    low, high = (
        sum(getattr(i, end) for i in items) / usage.requests_millions for end in ("low", "high")
    )
    serving = plan["outputs"]["serving"]
    return "\n".join(
        [
            f"Model pods run {serving['backend']} {serving['setting']} on "
            f"{serving['machineType']} ({serving['reason']}).",
            f"Capacity ({sized.row.seconds_per_text} s per text, {sized.row.basis}): one model "
            f"pod sustains {sized.pod_texts_per_s:.1f} texts/s; expected peak "
            f"{sized.peak_texts_per_s:.1f} texts/s ({usage.requests_millions:g}M a month x "
            f"{PEAK_TO_MEAN:g}) needs {sized.pods_at_peak} pods = {sized.nodes_at_peak} model "
            f"nodes ({sized.pods_per_node} pods per node, pool maximum {sized.max_nodes}).",
            f"Cost per million moderated texts: ${low:,.2f} at minimum scale, "
            f"${high:,.2f} at maximum.",
        ]
    )


def busy_node_cost_per_million(node: NodeThroughput) -> float:
    """USD per million texts of one on-demand node kept busy (us-central1 list prices)."""
    accelerators = [{"type": node.gpu_type, "count": 1}] if node.gpu_type else []
    hourly = node_hourly(
        {"machineType": node.machine_type, "guestAccelerators": accelerators}, None
    )
    return hourly / (node.texts_per_s * 3600) * 1e6


def family_comparison(model: Runtime) -> str:
    """Cost per million texts of a busy on-demand node of each family and GPU type the capacity
    table knows, in the setting the service would choose there; the cheapest named."""
    nodes = node_throughputs(model)
    costs = [busy_node_cost_per_million(node) for node in nodes]
    rows = []
    for node, cost in sorted(zip(nodes, costs, strict=True), key=lambda pair: pair[1]):
        machine = node.machine_type + (f" + {node.gpu_type}" if node.gpu_type else "")
        kind = "measured" if str(node.row.basis).startswith("measured") else "estimated"
        rows.append(
            f"  {machine:<34} {node.row.setting!s:<9} {node.texts_per_s:>8.1f} texts/s  "
            f"${cost:>7.2f} per million ({kind})"
        )
    cheapest = min(zip(nodes, costs, strict=True), key=lambda pair: pair[1])[0]
    return "\n".join(
        [
            f"Families compared for {model.backend.value} validated "
            f"[{', '.join(str(s) for s in model.validated)}] (one busy on-demand node, "
            "us-central1; settings the service would choose there; tools/capacity.py gives "
            "each row's basis):",
            *rows,
            f"Cheapest: {cheapest.machine_type}"
            + (f" + {cheapest.gpu_type}" if cheapest.gpu_type else "")
            + f" ({cheapest.row.setting}).",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
