"""How many model pods fit on a node: GKE's allocatable resources, less the system daemons.

Used by the config check so that an HPA maximum the node pool can never hold, or a pod larger than
its node, fails before deployment instead of leaving pods Pending. Reservations follow GKE's
documented formulas (https://cloud.google.com/kubernetes-engine/docs/concepts/plan-node-sizes and
the image-streaming memory reservation); machine shapes come from the cost table (infra/cost.py).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from infra.cost import PlanError, machine_shape

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
