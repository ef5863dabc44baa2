"""How many model pods fit on a node: GKE's allocatable resources, less the system daemons.

Used by the config check so that an HPA maximum the node pool can never hold, or a pod larger than
its node, fails before deployment instead of leaving pods Pending. Reservations follow GKE's
documented formulas (https://cloud.google.com/kubernetes-engine/docs/concepts/plan-node-sizes and
the image-streaming memory reservation); machine shapes come from the cost table (infra/cost.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.cost import HOURS_PER_MONTH, PlanError, machine_shape, node_count_range

# (size of the tier, share reserved) from the first unit upwards.
CPU_RESERVATION = ((1.0, 0.06), (1.0, 0.01), (2.0, 0.005), (math.inf, 0.0025))
MEMORY_RESERVATION = ((4.0, 0.25), (4.0, 0.20), (8.0, 0.10), (112.0, 0.06), (math.inf, 0.02))
IMAGE_STREAMING_RESERVATION = (
    (4.0, 0.10),
    (4.0, 0.08),
    (8.0, 0.04),
    (112.0, 0.024),
    (math.inf, 0.008),
)
EVICTION_THRESHOLD_GIB = 100 / 1024
# Requests of GKE's per-node DaemonSets with Dataplane V2, Managed Prometheus, logging and
# NodeLocal DNSCache: an estimate on the safe side; `kubectl describe node` shows the real sum.
SYSTEM_DAEMONS_CPU = 0.4
SYSTEM_DAEMONS_MEMORY_GIB = 0.5

_CPU = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m?)$")
_MEMORY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti)?$")
_BINARY_UNITS = {None: 1.0, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}


@dataclass(frozen=True)
class NodeRoom:
    """CPU cores and GiB of memory left for workload pods on one node."""

    cpu: float
    memory_gib: float


def _reserved(total: float, tiers: tuple[tuple[float, float], ...]) -> float:
    reserved, remaining = 0.0, total
    for size, share in tiers:
        portion = min(remaining, size)
        reserved += portion * share
        remaining -= portion
        if remaining <= 0:
            break
    return reserved


def room_on(machine_type: str) -> NodeRoom | None:
    """Room for pods on one node of this type; None for a shape the cost table does not know."""
    try:
        _, vcpus, memory_gib, _ = machine_shape(machine_type)
    except PlanError:
        return None
    cpu = vcpus - _reserved(vcpus, CPU_RESERVATION) - SYSTEM_DAEMONS_CPU
    memory = (
        memory_gib
        - _reserved(memory_gib, MEMORY_RESERVATION)
        - EVICTION_THRESHOLD_GIB
        - _reserved(memory_gib, IMAGE_STREAMING_RESERVATION)  # image streaming is on
        - SYSTEM_DAEMONS_MEMORY_GIB
    )
    return NodeRoom(cpu=cpu, memory_gib=memory)


def cpu_cores(quantity: str) -> float:
    """A Kubernetes CPU quantity ("2", "0.5", "500m") in cores."""
    match = _CPU.fullmatch(quantity)
    if match is None:
        raise ValueError(f"{quantity!r} is not a CPU quantity")
    return float(match.group(1)) / (1000 if match.group(2) else 1)


def memory_gib(quantity: str) -> float:
    """A Kubernetes memory quantity ("4Gi", "512Mi", bytes) in GiB."""
    match = _MEMORY.fullmatch(quantity)
    if match is None:
        raise ValueError(f"{quantity!r} is not a binary memory quantity")
    return float(match.group(1)) * _BINARY_UNITS[match.group(2)] / 2.0**30


def pods_per_node(room: NodeRoom, cpu_request: str, memory_request: str) -> int:
    """How many pods with these requests one node holds."""
    return min(
        math.floor(room.cpu / cpu_cores(cpu_request)),
        math.floor(room.memory_gib / memory_gib(memory_request)),
    )


# --- serving capacity, from `make bench` --------------------------------------------------------


@dataclass(frozen=True)
class MeasuredServing:
    """What one inference thread of the production-size model does, as measured by `make bench`.

    CPU seconds per text (not wall time) are the figure to scale from: the benchmark machine is
    shared, and other work there stretches wall time but hardly the CPU a text costs.
    """

    cpu_seconds_per_text: float
    """`limit` at batch 1 in the serving precision: one text of bench/texts.py's mix."""
    service_efficiency: float
    """`service` texts/s over `limit` texts/s at their best levels, in the same run."""
    source: str


# fp32 (what the shipped catalog serves KoalaAI/Text-Moderation in), one thread, one text at a
# time: the mean fp32 reference of four `make validate-precision` runs on the benchmark model,
# 2026-12-02 (0.298, 0.333, 0.326, 0.301). The service matched the limit at its best level (1.08x in
# bench/results/2026-12-02.md, noise on a shared machine): counted as 1.0.
MEASURED = MeasuredServing(
    cpu_seconds_per_text=0.314,
    service_efficiency=1.0,
    source="make bench / make validate-precision, 2026-12-02",
)
# Scale out while a pod still has room: new pods take minutes (node, image, model load).
HPA_HEADROOM = 0.7
# Busiest hour over the month's mean rate, for sizing the model pool.
PEAK_TO_MEAN = 3.0


def inference_threads(cpu_request: str) -> int:
    """Intra-op threads of a pod: the whole cores it requests, at least one."""
    return max(math.floor(cpu_cores(cpu_request)), 1)


def pod_texts_per_s(cpu_request: str) -> float:
    """Texts per second one model pod sustains (one text per request)."""
    threads = inference_threads(cpu_request)
    return threads / MEASURED.cpu_seconds_per_text * MEASURED.service_efficiency


def in_flight_target(cpu_request: str, latency_objective_s: float) -> int:
    """The HPA's per-pod in-flight target: by Little's law a pod answering X texts/s keeps
    X x R requests in flight at response time R, so at the latency objective, less headroom."""
    return max(math.floor(pod_texts_per_s(cpu_request) * latency_objective_s * HPA_HEADROOM), 1)


@dataclass(frozen=True)
class ServingPlan:
    """The model pods of a plan at its expected peak."""

    pod_texts_per_s: float
    peak_texts_per_s: float
    pods_at_peak: int
    pods_per_node: int
    nodes_at_peak: int
    max_nodes: int


def serving_plan(plan: Mapping[str, Any], requests_millions: float) -> ServingPlan:
    """Size the model pool of `plan` for `requests_millions` texts a month (one per request)."""
    from infra.node_pools import POOL_LABEL  # node_pools -> config -> this module

    (pod,) = [
        r["inputs"]["spec"]["template"]["spec"]
        for r in plan["resources"]
        if r["type"] == "kubernetes:apps/v1:Deployment"
        and POOL_LABEL in (r["inputs"]["spec"]["template"]["spec"].get("nodeSelector") or {})
        and r["inputs"]["metadata"]["name"].endswith("-stable")
    ]
    requests = pod["containers"][0]["resources"]["requests"]
    (pool,) = [
        r["inputs"]
        for r in plan["resources"]
        if r["type"] == "gcp:container/nodePool:NodePool"
        and (r["inputs"]["nodeConfig"].get("labels") or {}).get(POOL_LABEL)
        == pod["nodeSelector"][POOL_LABEL]
    ]
    machine_type = pool["nodeConfig"]["machineType"]
    room = room_on(machine_type)
    if room is None:
        raise PlanError(f"no shape for machine type {machine_type!r}")
    per_node = pods_per_node(room, requests["cpu"], requests["memory"])
    per_pod = pod_texts_per_s(requests["cpu"])
    peak = requests_millions * 1e6 / (HOURS_PER_MONTH * 3600) * PEAK_TO_MEAN
    pods = max(math.ceil(peak / per_pod), 1)
    return ServingPlan(
        pod_texts_per_s=per_pod,
        peak_texts_per_s=peak,
        pods_at_peak=pods,
        pods_per_node=per_node,
        nodes_at_peak=math.ceil(pods / per_node),
        max_nodes=node_count_range(pool)[1],
    )
