"""The GPU track's Bento (bentofile.gpu.yaml, `make bento GPU=1`): BentoML's own build config
reads it as an image with the CUDA runtime; its packages are the CPU Bento's but for torch."""

from __future__ import annotations

import re
from pathlib import Path

from bentoml._internal.bento.build_config import BentoBuildConfig

from tools.build_bento import BUILD_FILES, GPU_BENTOFILE

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)$", re.MULTILINE)


def _config(name: str) -> BentoBuildConfig:
    with (ROOT / name).open() as stream:
        return BentoBuildConfig.from_yaml(stream).with_defaults()


def _pins(path: str) -> dict[str, str]:
    return dict(PIN.findall((ROOT / path).read_text()))


def test_the_gpu_bento_has_a_cuda_runtime_and_the_cpu_bento_none() -> None:
    gpu, cpu = _config(GPU_BENTOFILE), _config("bentofile.yaml")
    # BentoML resolves the version to an NVIDIA CUDA base and refuses a distro without one.
    assert gpu.docker.cuda_version == "12.8.1"
    assert cpu.docker.cuda_version is None
    assert gpu.service == cpu.service
    assert gpu.include == cpu.include
    assert gpu.python.requirements_txt is not None
    assert GPU_BENTOFILE in BUILD_FILES
    assert gpu.python.requirements_txt in BUILD_FILES


def test_the_gpu_requirements_differ_from_the_cpu_ones_in_their_cuda_builds_alone() -> None:
    cpu = _pins("requirements/service.txt")
    gpu = _pins(_config(GPU_BENTOFILE).python.requirements_txt)
    assert cpu.pop("torch").endswith("+cpu")
    assert "+" not in gpu.pop("torch")  # PyPI's torch: the CUDA build
    assert gpu.pop("onnxruntime-gpu") == cpu.pop("onnxruntime")  # its CUDA execution provider
    assert gpu == cpu
