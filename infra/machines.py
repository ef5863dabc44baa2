"""The machine table: every Compute Engine machine family the kit can run nodes on.

One table for the whole kit: config validation (infra/config.py) refuses a machine type it does
not hold, the pod-sizing check reads node room from it and the cost tool (tools/cost.py) prices
its families, so a family is either known everywhere or refused with a named error. A leaf
module: it imports nothing of the kit.

Sources:
- shapes (vCPUs, GiB of memory per vCPU by predefined shape, shared-core E2, G2's bundled L4s):
  https://cloud.google.com/compute/docs/machine-resource
- CPU platforms of each family and their instruction-set extensions:
  https://cloud.google.com/compute/docs/cpu-platforms ; `cpu_features` lists what every platform
  of the family has (a node may land on any of them), so bf16 or AMX is claimed only where no
  platform lacks it.
  Re-read 2026-12-03 for issue 19: N2 on Cascade Lake or Ice Lake (the minimum-CPU-platform page:
  neither has avx512_bf16, both avx512_vnni), C3 on Sapphire Rapids with AMX (general-purpose
  machines page). The N2D, T2D, E2 and G2 rows were not re-read; the features follow from the
  processors listed (AMD Rome / Milan: AVX2, no AVX-512; Haswell and Broadwell: AVX2 only).
- GPUs each family attaches: https://cloud.google.com/compute/docs/gpus ; their CUDA compute
  capability: https://developer.nvidia.com/cuda-gpus (what decides fp16 / bf16, service/hardware.py)
- node room: GKE's allocatable formulas,
  https://cloud.google.com/kubernetes-engine/docs/concepts/plan-node-sizes (and the image-streaming
  memory reservation).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field


class UnknownMachineType(ValueError):
    """A machine type outside the table: not guessed at, refused."""


@dataclass(frozen=True)
class MachineFamily:
    """One machine family (the part of a machine type before the first dash)."""

    cpu_platforms: tuple[str, ...]
    cpu_features: frozenset[str]
    """Instruction-set extensions every platform of the family has, named as the node's
    /proc/cpuinfo flags name them (avx2, avx512f, avx512_vnni, avx512_bf16, amx_bf16, ...)."""
    memory_per_vcpu: Mapping[str, float]
    """GiB of memory per vCPU of each predefined shape (`<family>-<shape>-<vcpus>`)."""
    gpu_types: frozenset[str] = frozenset()
    """GPUs a node pool of this family may attach (`guestAccelerators`)."""
    bundled_gpus: Mapping[int, int] = field(default_factory=dict)
    """GPUs the machine type itself includes, by vCPU count (G2's L4s)."""


AVX2 = frozenset({"avx2"})
AVX512_VNNI = AVX2 | {"avx512f", "avx512_vnni"}
AMX = AVX512_VNNI | {"avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"}
GENERAL_PURPOSE = {"standard": 4.0, "highmem": 8.0, "highcpu": 1.0}

FAMILIES: Mapping[str, MachineFamily] = {
    "e2": MachineFamily(
        ("Intel Skylake", "Intel Broadwell", "Intel Haswell", "AMD Rome", "AMD Milan"),
        AVX2,
        GENERAL_PURPOSE,
    ),
    "n1": MachineFamily(
        ("Intel Skylake", "Intel Broadwell", "Intel Haswell"),
        AVX2,
        {"standard": 3.75, "highmem": 6.5, "highcpu": 0.9},
        gpu_types=frozenset({"nvidia-tesla-t4"}),
    ),
    "n2": MachineFamily(("Intel Cascade Lake", "Intel Ice Lake"), AVX512_VNNI, GENERAL_PURPOSE),
    "n2d": MachineFamily(("AMD Rome", "AMD Milan"), AVX2, GENERAL_PURPOSE),
    "t2d": MachineFamily(("AMD Milan",), AVX2, {"standard": 4.0}),
    "c3": MachineFamily(
        ("Intel Sapphire Rapids",), AMX, {"standard": 4.0, "highmem": 8.0, "highcpu": 2.0}
    ),
    "g2": MachineFamily(
        ("Intel Cascade Lake",),
        AVX512_VNNI,
        {"standard": 4.0},
        gpu_types=frozenset({"nvidia-l4"}),
        bundled_gpus={4: 1, 8: 1, 12: 1, 16: 1, 24: 2, 32: 1, 48: 4, 96: 8},
    ),
}
# Shared-core E2 types: (billed vCPUs, GiB).
SHARED_CORE: Mapping[str, tuple[float, float]] = {
    "e2-micro": (0.25, 1.0),
    "e2-small": (0.5, 2.0),
    "e2-medium": (1.0, 4.0),
}
# CUDA compute capability of each GPU type (service/hardware.py: fp16 from 7.0, bf16 from 8.0).
GPU_CAPABILITY: Mapping[str, tuple[int, int]] = {
    "nvidia-tesla-t4": (7, 5),
    "nvidia-l4": (8, 9),
}
GPU_TYPES = frozenset().union(*(family.gpu_types for family in FAMILIES.values()))
GPU_FAMILIES = frozenset(name for name, family in FAMILIES.items() if family.gpu_types)
BUNDLED_GPU_TYPE = "nvidia-l4"  # what G2 machine types include

_PREDEFINED = re.compile(r"([a-z0-9]+)-([a-z]+)-([0-9]+)")


@dataclass(frozen=True)
class MachineShape:
    family: str
    vcpus: float
    memory_gib: float
    bundled_gpus: int


def family_of(machine_type: str) -> str:
    return machine_type.split("-", 1)[0]


def machine_family(machine_type: str) -> MachineFamily:
    """The table's entry for the family of `machine_type`."""
    family = family_of(machine_type)
    if family not in FAMILIES:
        raise UnknownMachineType(
            f"unknown machine family {family!r} (known: {', '.join(sorted(FAMILIES))})"
        )
    return FAMILIES[family]


def shape_of(machine_type: str) -> MachineShape:
    """vCPUs, memory and bundled GPUs of a predefined machine type of a known family."""
    if machine_type in SHARED_CORE:
        vcpus, memory = SHARED_CORE[machine_type]
        return MachineShape("e2", vcpus, memory, 0)
    family = machine_family(machine_type)
    match = _PREDEFINED.fullmatch(machine_type)
    if match is None or match.group(2) not in family.memory_per_vcpu:
        shapes = ", ".join(family.memory_per_vcpu)
        raise UnknownMachineType(
            f"{machine_type!r} is not a predefined {family_of(machine_type)} type "
            f"(<family>-<shape>-<vCPUs>, shapes: {shapes})"
        )
    vcpus = int(match.group(3))
    return MachineShape(
        family=match.group(1),
        vcpus=float(vcpus),
        memory_gib=vcpus * family.memory_per_vcpu[match.group(2)],
        bundled_gpus=family.bundled_gpus.get(vcpus, 0),
    )


# --- node room: GKE's allocatable resources, less the system daemons ----------------------------

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


def room_on(machine_type: str) -> NodeRoom:
    """Room for pods on one node of this type (image streaming on, as the cluster has it)."""
    shape = shape_of(machine_type)
    cpu = shape.vcpus - _reserved(shape.vcpus, CPU_RESERVATION) - SYSTEM_DAEMONS_CPU
    memory = (
        shape.memory_gib
        - _reserved(shape.memory_gib, MEMORY_RESERVATION)
        - EVICTION_THRESHOLD_GIB
        - _reserved(shape.memory_gib, IMAGE_STREAMING_RESERVATION)
        - SYSTEM_DAEMONS_MEMORY_GIB
    )
    return NodeRoom(cpu=cpu, memory_gib=memory)
