"""How model pods fit their nodes: Kubernetes quantities, pods per node, inference threads.

What the deployed program itself needs of capacity: the config check (infra/config.py) refuses a
pod larger than its node or an HPA maximum the pool cannot hold, or a pool that runs none of its
model's validated settings natively, and the workload sets the service's inference threads from
the CPU it requests. Node room and node features come from the machine table.
"""

from __future__ import annotations

import math
import re

from infra.machines import BUNDLED_GPU_TYPE, GPU_CAPABILITY, NodeRoom, machine_family, shape_of
from service.hardware import Gpu, Hardware

_CPU = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m?)$")
_MEMORY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti)?$")
_BINARY_UNITS = {None: 1.0, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}


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


def inference_threads(cpu_request: str) -> int:
    """Intra-op threads of a pod: the whole cores it requests, at least one."""
    return max(math.floor(cpu_cores(cpu_request)), 1)


def node_hardware(machine_type: str, accelerator_type: str | None = None) -> Hardware:
    """What a node of this type offers a model, as the service would detect it there: the CPU
    features every platform of its family has, and its GPU (attached, or G2's own L4).

    ONNX Runtime's CUDA provider is not counted: the GPU image carries torch's CUDA build only.
    """
    if accelerator_type is None and shape_of(machine_type).bundled_gpus:
        accelerator_type = BUNDLED_GPU_TYPE
    gpu = None
    if accelerator_type is not None:
        gpu = Gpu(accelerator_type, GPU_CAPABILITY[accelerator_type])
    return Hardware(machine_family(machine_type).cpu_features, gpu)
