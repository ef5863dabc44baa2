"""Which validated setting of a model the node runs natively, and the fastest of them.

The service reads the node at load (`detect_hardware`: the CPU's /proc/cpuinfo flags, the GPU's
CUDA compute capability) and runs `choose_setting`'s answer; infra/config.py applies the same rule
to a machine family's features (infra/machines.py) to refuse a model pool that would run no
validated setting natively. Emulated arithmetic is never chosen: when no validated setting is
native, the model runs its fp32 reference (what every setting was validated against) and the
choice says so, for a log line and a metric label.

When a setting is native:
- bf16 on a CPU: `avx512_bf16` (Cooper Lake, Sapphire Rapids, AMD Zen 4) or AMX (`amx_bf16`).
  Without them torch's autocast emulates bf16 and runs several times slower than fp32 (measured:
  docs/performance.md).
- int8 on a CPU (dynamic quantisation: torch's FBGEMM, ONNX Runtime's MLAS): both have AVX2 int8
  kernels (`vpmaddubsw`: u8 x s8 pairs summed to s16) and faster VNNI / AMX ones (`vpdpbusd`,
  one instruction to s32: `avx512_vnni`, `avx_vnni`; AMX tiles: `amx_int8`). AVX2 is integer
  arithmetic in hardware, not emulation: on an AVX2-only AMD EPYC, one thread, int8 cost 0.25 CPU
  seconds a text against fp32's 0.42 with torch, 0.11 with ONNX Runtime (tools/capacity.py). So
  int8 counts as native from AVX2 on, and the reason names the path. Without VNNI the s16 sums
  can saturate (oneDNN's "Nuances of int8 computations"; ONNX Runtime's
  `session.x64quantprecision` option exists for it), so validate int8 on the CPU class it will
  serve on.
- on a GPU: fp32 always; fp16 from compute capability 7.0 (tensor cores); bf16 from 8.0 (Ampere;
  an L4 is 8.9, a T4 7.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from service.catalog import PRECISIONS, Backend, Device, Precision, Runtime, Setting

CPUINFO = Path("/proc/cpuinfo")
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni", "avx2")  # fastest path first
FP16_CAPABILITY = (7, 0)
BF16_CAPABILITY = (8, 0)
# Fastest first; a GPU setting is faster than any CPU one for a BERT-sized encoder.
SPEED_ORDER = tuple(
    Setting.model_validate(text)
    for text in ("gpu:bf16", "gpu:fp16", "gpu:fp32", "int8", "bf16", "fp32")
)


@dataclass(frozen=True)
class Gpu:
    name: str
    capability: tuple[int, int]


@dataclass(frozen=True)
class Hardware:
    """What a node offers a model: CPU flags (as /proc/cpuinfo names them) and a GPU, if any."""

    cpu_flags: frozenset[str]
    gpu: Gpu | None = None
    onnx_cuda: bool = False
    """ONNX Runtime has its CUDAExecutionProvider (the onnxruntime-gpu build)."""


@dataclass(frozen=True)
class Choice:
    """The setting a model runs in, and why: `fallback` when no validated setting is native."""

    setting: Setting
    reason: str
    fallback: bool = False


def native(setting: Setting, backend: Backend, hardware: Hardware) -> tuple[bool, str]:
    """Whether `backend` runs `setting` natively on `hardware`, and the feature that decides."""
    if setting.precision not in PRECISIONS[backend, setting.device]:
        return False, f"{backend.value} has no {setting}"
    if setting.device is Device.GPU:
        return _native_on_gpu(setting.precision, backend, hardware)
    if setting.precision is Precision.BF16:
        return _first_flag(hardware.cpu_flags, BF16_FLAGS, "bf16")
    if setting.precision is Precision.INT8:
        return _first_flag(hardware.cpu_flags, INT8_FLAGS, "int8")
    return True, f"{setting}"


def _first_flag(flags: frozenset[str], wanted: tuple[str, ...], what: str) -> tuple[bool, str]:
    found = next((flag for flag in wanted if flag in flags), None)
    if found is None:
        return False, f"{what} needs one of {', '.join(wanted)}"
    return True, f"{what} on {found}"


def _native_on_gpu(precision: Precision, backend: Backend, hardware: Hardware) -> tuple[bool, str]:
    gpu = hardware.gpu
    if gpu is None:
        return False, "no GPU"
    if backend is Backend.ONNX and not hardware.onnx_cuda:
        return False, "ONNX Runtime without CUDAExecutionProvider"
    needed = {Precision.FP16: FP16_CAPABILITY, Precision.BF16: BF16_CAPABILITY}.get(precision)
    capability = f"{gpu.name} {gpu.capability[0]}.{gpu.capability[1]}"
    if needed is not None and gpu.capability < needed:
        return False, f"gpu:{precision} needs compute capability {needed[0]}.{needed[1]}"
    return True, f"gpu:{precision} on {capability}"


def choose_setting(spec: Runtime, hardware: Hardware) -> Choice:
    """The fastest setting that is validated (or the fp32 reference) and native here.

    fp32 is the reference every setting was validated against, so it may always run: on a GPU
    with no validated GPU setting, and as the fallback where no validated setting is native.
    """
    refused: list[str] = []
    for setting in SPEED_ORDER:
        validated = setting in spec.validated
        if not validated and setting.precision is not Precision.FP32:
            continue
        is_native, why = native(setting, spec.backend, hardware)
        if not is_native:
            if validated:
                refused.append(f"{setting} not native ({why})")
            continue
        if validated:
            passed_over = f" ({'; '.join(refused)})" if refused else ""
            return Choice(setting, f"validated, native: {why}{passed_over}")
        if not refused:
            return Choice(setting, f"fp32 reference: {why}")
        return Choice(setting, f"fallback to fp32: {'; '.join(refused)}", fallback=True)
    raise AssertionError("fp32 on the CPU is always native")  # pragma: no cover


def read_cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The first processor's feature flags (x86 `flags`, Arm `Features`); none if unreadable."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def detect_hardware(with_gpu: bool) -> Hardware:
    """This node: CPU flags, and, when a model could use one (`with_gpu`), its CUDA GPU.

    torch is imported only then: a catalog of scikit-learn models never needs it.
    """
    flags = read_cpu_flags()
    if not with_gpu:
        return Hardware(flags)
    import onnxruntime
    import torch

    gpu = None
    if torch.cuda.is_available():
        gpu = Gpu(torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0))
    onnx_cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    return Hardware(flags, gpu, onnx_cuda)


def uses_gpu_runtime(spec: Runtime) -> bool:
    """Whether the model's backend could run on a GPU (worth importing torch to look for one)."""
    return spec.backend is not Backend.SKLEARN


def choice_on_this_node(spec: Runtime) -> Choice:
    """`choose_setting` for the machine this process runs on."""
    return choose_setting(spec, detect_hardware(uses_gpu_runtime(spec)))
