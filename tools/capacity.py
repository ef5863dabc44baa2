"""Serving capacity per machine family and setting: the table the HPA's in-flight target and the
model pool at the expected peak follow from (printed by `make cost`), and the cost per million
texts of each family and GPU type the table knows.

The figures are for the production-size model (the benchmark model of bench/models.py:
DeBERTa-v3-base-shaped, KoalaAI/Text-Moderation's labels) on bench/texts.py's mix, one inference
thread, one text at a time: CPU seconds per text (GPU seconds on a GPU). Measured rows say how and
when; the other rows say which measured row they are estimated from, and how. Which row a stack
uses is what the plan says its pods will run (`serving` output: service/hardware.py's choice for
the pool's machine family, infra/config.py), so the setting follows the hardware here too.
Pods per node come from the program's own sizing (infra/sizing.py) and the machine table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.machines import UnknownMachineType, room_on, shape_of
from infra.node_pools import POOL_LABEL
from infra.sizing import inference_threads, node_hardware, pods_per_node
from service.catalog import Backend, Runtime, Setting
from service.hardware import choose_setting, native
from tools.plan_document import HOURS_PER_MONTH, PlanError, node_count_range


@dataclass(frozen=True)
class Measured:
    """A row measured on a machine of the family's CPU class."""

    command: str
    date: str
    machine: str

    def __str__(self) -> str:
        return f"measured {self.date} on {self.machine}: {self.command}"


@dataclass(frozen=True)
class Estimated:
    """A row scaled from a measured one."""

    from_row: str
    how: str

    def __str__(self) -> str:
        return f"estimated from {self.from_row}: {self.how}"


@dataclass(frozen=True)
class CapacityRow:
    """Seconds of one CPU thread (or of the GPU) per text, on one family, in one setting."""

    family: str
    backend: Backend
    setting: Setting
    seconds_per_text: float
    basis: Measured | Estimated
    gpu_type: str | None = None

    @property
    def key(self) -> str:
        device = f" + {self.gpu_type}" if self.gpu_type else ""
        return f"{self.family}{device} {self.backend.value} {self.setting}"


# The measured rows. On the AMX machine: `make validate-precision` on the benchmark model,
# MODERATION_INFERENCE_THREADS=1, one text at a time (docs/performance.md "Precision and
# runtime"); fp32 is the mean reference of its four runs (0.298, 0.333, 0.326, 0.301), each other
# setting its candidate column; its ONNX rows are of the export before its position window and
# torch.export (tools/onnx_export.py), each of which took CPU seconds off a text on the AVX2
# machine (9% and 7%, side by side): they overstate the cost. On the AVX2 machine: one
# in-process run per setting (ONNX: the mean of two runs of the current export).
AMX_MACHINE = "a 2-vCPU Intel Xeon with AMX and avx512_bf16 (c3's Sapphire Rapids class)"
AVX2_MACHINE = "a 2-vCPU AMD EPYC with AVX2, no AVX-512 (n2d's / t2d's Rome-Milan class), loaded"
AMX_DATE = "2026-12-02"
AMX_GATE = "make validate-precision PRECISION={} --texts 48, MODERATION_INFERENCE_THREADS=1"
AVX2_COMMAND = (
    "in process: CategoryScorer of the benchmark model in each setting (ONNX: its "
    "tools/onnx_export.py export), MODERATION_INFERENCE_THREADS=1, one text at a time, 30 texts "
    "of moderation_texts(30, seed=7), time.process_time per text"
)
AVX2_DATE = "2026-12-03"
_T, _O = Backend.TRANSFORMERS, Backend.ONNX


def _s(text: str) -> Setting:
    return Setting.model_validate(text)


def _amx(backend: Backend, setting: str, seconds: float, gate: str) -> CapacityRow:
    return CapacityRow("c3", backend, _s(setting), seconds, Measured(gate, AMX_DATE, AMX_MACHINE))


def _avx2(backend: Backend, setting: str, seconds: float) -> CapacityRow:
    return CapacityRow(
        "n2d", backend, _s(setting), seconds, Measured(AVX2_COMMAND, AVX2_DATE, AVX2_MACHINE)
    )


_MEASURED = (
    _amx(_T, "fp32", 0.314, "make validate-precision: its fp32 reference, mean of four runs"),
    _amx(_T, "bf16", 0.201, AMX_GATE.format("bf16")),
    _amx(_T, "int8", 0.171, AMX_GATE.format("int8")),
    _amx(_O, "fp32", 0.136, AMX_GATE.format("fp32 BACKEND=onnx TAG=<export>")),
    _amx(_O, "int8", 0.061, AMX_GATE.format("int8 BACKEND=onnx TAG=<export>")),
    _avx2(_T, "fp32", 0.4186),
    _avx2(_T, "int8", 0.2513),
    _avx2(_O, "fp32", 0.1501),
    _avx2(_O, "int8", 0.0985),
)
# GPU seconds per text, from arithmetic: ~2 x 86M encoder weights x ~48 tokens a text of the mix
# = ~8 GFLOP, at a tenth of the GPU's dense tensor (or fp32) peak; no GPU was lent to measure.
GPU_PEAK_TFLOPS = {
    ("nvidia-l4", "half"): 121.0,
    ("nvidia-l4", "fp32"): 30.3,
    ("nvidia-tesla-t4", "half"): 65.0,
    ("nvidia-tesla-t4", "fp32"): 8.1,
}
GFLOP_PER_TEXT = 8.0
GPU_UTILISATION = 0.1


def _scaled(family: str, source: CapacityRow, factor: float, how: str) -> CapacityRow:
    return CapacityRow(
        family,
        source.backend,
        source.setting,
        round(source.seconds_per_text * factor, 4),
        Estimated(source.key, how),
    )


def _estimated() -> tuple[CapacityRow, ...]:
    rows: list[CapacityRow] = []
    # n2 (Cascade Lake / Ice Lake): AVX-512 and VNNI like c3, no AMX and no bf16. fp32 runs the
    # same AVX-512 kernels (assumed equal); int8 without AMX is taken at AVX2's cost relative to
    # fp32 (VNNI should do better: a conservative figure).
    amx_fp32 = next(r for r in _MEASURED if r.key == "c3 transformers fp32")
    rows.append(_scaled("n2", amx_fp32, 1.0, "x 1.0: the same AVX-512 fp32 kernels, assumed"))
    avx2 = {r.key: r for r in _MEASURED if r.family == "n2d"}
    to_n2 = amx_fp32.seconds_per_text / avx2["n2d transformers fp32"].seconds_per_text
    for key in ("n2d transformers int8", "n2d onnx fp32", "n2d onnx int8"):
        how = f"x {to_n2:.2f}, the fp32 ratio of the AMX and AVX2 machines (VNNI should do better)"
        rows.append(_scaled("n2", avx2[key], to_n2, how))
    # t2d (Milan, one core per vCPU), e2 and n1 (may land on Haswell / Broadwell): AVX2 like n2d.
    for family, how in (
        ("t2d", "x 1.0: the same AMD Milan CPUs (no SMT: if anything faster per vCPU)"),
        ("e2", "x 1.0: AVX2 alike; an e2 node may land on older Intel (slower)"),
        ("n1", "x 1.0: AVX2 alike; Skylake to Haswell (likely slower)"),
    ):
        for row in [r for r in _MEASURED if r.family == "n2d"]:
            rows.append(_scaled(family, row, 1.0, how))
    for family, gpu in (("g2", "nvidia-l4"), ("n1", "nvidia-tesla-t4")):
        for setting, peak in (("gpu:fp16", "half"), ("gpu:bf16", "half"), ("gpu:fp32", "fp32")):
            if not native(_s(setting), _T, node_hardware(f"{family}-standard-4", gpu))[0]:
                continue  # a T4 has no bf16
            tflops = GPU_PEAK_TFLOPS[gpu, peak]
            seconds = GFLOP_PER_TEXT / (tflops * 1000 * GPU_UTILISATION)
            rows.append(
                CapacityRow(
                    family,
                    _T,
                    _s(setting),
                    round(seconds, 5),
                    Estimated(
                        "arithmetic, no GPU measured",
                        f"{GFLOP_PER_TEXT:g} GFLOP a text at {GPU_UTILISATION:.0%} of {gpu}'s "
                        f"{tflops:g} TFLOPS {peak} peak",
                    ),
                    gpu_type=gpu,
                )
            )
    return tuple(rows)


CAPACITY: tuple[CapacityRow, ...] = (*_MEASURED, *_estimated())
# The service matched the limit at its best level (1.08x in bench/results/2026-12-02.md, noise on a
# shared machine): counted as 1.0 until `make bench` shows otherwise for a setting.
SERVICE_EFFICIENCY = 1.0
# Scale out while a pod still has room: new pods take minutes (node, image, model load).
HPA_HEADROOM = 0.7
# Busiest hour over the month's mean rate, for sizing the model pool.
PEAK_TO_MEAN = 3.0


class NoCapacityRow(PlanError):
    """The table has no row for a family and setting: measure it (`make bench`), then add it."""


def capacity_row(
    machine_type: str, backend: Backend, setting: Setting, gpu_type: str | None = None
) -> CapacityRow:
    family = shape_of(machine_type).family
    gpu = gpu_type if setting.device.value == "gpu" else None
    for row in CAPACITY:
        if (row.family, row.backend, row.setting, row.gpu_type) == (family, backend, setting, gpu):
            return row
    raise NoCapacityRow(
        f"no capacity row for {family} {backend.value} {setting}: measure it with `make bench` "
        "and add it to tools/capacity.py"
    )


def pod_texts_per_s(cpu_request: str, row: CapacityRow) -> float:
    """Texts per second one model pod sustains (one text per request): its threads on a CPU,
    its GPU on a GPU."""
    workers = 1 if row.gpu_type else inference_threads(cpu_request)
    return workers / row.seconds_per_text * SERVICE_EFFICIENCY


def in_flight_target(cpu_request: str, latency_objective_s: float, row: CapacityRow) -> int:
    """The HPA's per-pod in-flight target: by Little's law a pod answering X texts/s keeps
    X x R requests in flight at response time R, so at the latency objective, less headroom."""
    return max(
        math.floor(pod_texts_per_s(cpu_request, row) * latency_objective_s * HPA_HEADROOM), 1
    )


def serving_row(plan: Mapping[str, Any]) -> CapacityRow:
    """The row of what the plan's model pods run (its `serving` output)."""
    serving = plan["outputs"]["serving"]
    setting = Setting.model_validate(serving["setting"])
    machine_type = serving["machineType"]
    gpu = node_hardware(machine_type).gpu if setting.device.value == "gpu" else None
    gpu_type = serving.get("acceleratorType") or (gpu.name if gpu else None)
    return capacity_row(machine_type, Backend(serving["backend"]), setting, gpu_type)


@dataclass(frozen=True)
class ServingPlan:
    """The model pods of a plan at its expected peak."""

    row: CapacityRow
    pod_texts_per_s: float
    peak_texts_per_s: float
    pods_at_peak: int
    pods_per_node: int
    nodes_at_peak: int
    max_nodes: int


def serving_plan(plan: Mapping[str, Any], requests_millions: float) -> ServingPlan:
    """Size the model pool of `plan` for `requests_millions` texts a month (one per request).
    With several regions every region runs the same pods on the same pool: the first's count."""
    pod, *_ = [
        r["inputs"]["spec"]["template"]["spec"]
        for r in plan["resources"]
        if r["type"] == "kubernetes:apps/v1:Deployment"
        and POOL_LABEL in (r["inputs"]["spec"]["template"]["spec"].get("nodeSelector") or {})
        and r["inputs"]["metadata"]["name"].endswith("-stable")
    ]
    requests = pod["containers"][0]["resources"]["requests"]
    pool, *_ = [
        r["inputs"]
        for r in plan["resources"]
        if r["type"] == "gcp:container/nodePool:NodePool"
        and (r["inputs"]["nodeConfig"].get("labels") or {}).get(POOL_LABEL)
        == pod["nodeSelector"][POOL_LABEL]
    ]
    machine_type = pool["nodeConfig"]["machineType"]
    try:
        room = room_on(machine_type)
    except UnknownMachineType as error:
        raise PlanError(f"no shape for machine type {machine_type!r}: {error}") from None
    row = serving_row(plan)
    per_node = pods_per_node(room, requests["cpu"], requests["memory"])
    per_pod = pod_texts_per_s(requests["cpu"], row)
    peak = requests_millions * 1e6 / (HOURS_PER_MONTH * 3600) * PEAK_TO_MEAN
    pods = max(math.ceil(peak / per_pod), 1)
    return ServingPlan(
        row=row,
        pod_texts_per_s=per_pod,
        peak_texts_per_s=peak,
        pods_at_peak=pods,
        pods_per_node=per_node,
        nodes_at_peak=math.ceil(pods / per_node),
        max_nodes=node_count_range(pool)[1],
    )


# --- the family comparison ----------------------------------------------------------------------

# One node of each family and GPU type the table knows, priced alike (tools/cost.py).
COMPARED_MACHINES: tuple[tuple[str, str | None], ...] = (
    ("e2-standard-8", None),
    ("n1-standard-8", None),
    ("n2-standard-8", None),
    ("n2d-standard-8", None),
    ("t2d-standard-8", None),
    ("c3-standard-8", None),
    ("g2-standard-4", None),
    ("n1-standard-4", "nvidia-tesla-t4"),
)


@dataclass(frozen=True)
class NodeThroughput:
    machine_type: str
    gpu_type: str | None
    row: CapacityRow
    reason: str
    texts_per_s: float


def node_throughputs(model: Runtime) -> list[NodeThroughput]:
    """What one busy node of each compared machine does for `model`, in the setting the service
    would choose there: every vCPU a thread on a CPU node, the GPU on a GPU node."""
    compared = []
    for machine_type, gpu_type in COMPARED_MACHINES:
        choice = choose_setting(model, node_hardware(machine_type, gpu_type))
        hardware_gpu = node_hardware(machine_type, gpu_type).gpu
        row = capacity_row(
            machine_type,
            model.backend,
            choice.setting,
            hardware_gpu.name if hardware_gpu else None,
        )
        workers = 1 if row.gpu_type else shape_of(machine_type).vcpus
        compared.append(
            NodeThroughput(
                machine_type,
                gpu_type,
                row,
                choice.reason,
                workers / row.seconds_per_text * SERVICE_EFFICIENCY,
            )
        )
    return compared
