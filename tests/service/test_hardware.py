"""Precision follows the hardware (service/hardware.py): the fastest validated setting the node runs
natively, never an emulated one silently. Nodes are described by the features a real one reports
(/proc/cpuinfo flags, CUDA compute capability); the selection itself runs unmocked."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import bentoml
import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families

from service.catalog import Catalog, ModelSpec, model_attribute
from service.hardware import (
    Gpu,
    Hardware,
    choose_setting,
    detect_hardware,
    read_cpu_flags,
)
from service.metrics import exposition
from service.moderation import LoadedModels
from tests.fixtures.catalog import StoredModels, koala_spec
from tests.fixtures.servers import RunningServer

# Flags as the kernel reports them on each CPU class (a subset: the ones that decide).
AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma"})  # AMD Rome / Milan (n2d, t2d)
AVX512_VNNI = AVX2_ONLY | {"avx512f", "avx512_vnni"}  # Cascade Lake, Ice Lake (n2, g2)
AMX = AVX512_VNNI | {"avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"}  # Sapphire Rapids (c3)
L4 = Gpu("NVIDIA L4", (8, 9))
T4 = Gpu("Tesla T4", (7, 5))
P4 = Gpu("Tesla P4", (6, 1))


def spec(*validated: str, backend: str = "transformers") -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": "m",
            "backend": backend,
            "tag": "m:v1",
            "labels": {"toxic": "harassment", "ok": None},
            "validated": list(validated),
        }
    )


def test_bf16_only_model_on_a_cpu_without_bf16_falls_back_to_fp32_and_says_why() -> None:
    choice = choose_setting(spec("bf16"), Hardware(AVX2_ONLY))
    assert str(choice.setting) == "fp32"
    assert choice.fallback
    assert "bf16 not native" in choice.reason
    assert "avx512_bf16" in choice.reason


def test_bf16_runs_where_the_cpu_has_it() -> None:
    choice = choose_setting(spec("fp32", "bf16"), Hardware(AMX))
    assert str(choice.setting) == "bf16"
    assert not choice.fallback
    assert "amx_bf16" in choice.reason


def test_a_validated_fp32_is_no_fallback_but_the_skipped_bf16_is_named() -> None:
    choice = choose_setting(spec("fp32", "bf16"), Hardware(AVX512_VNNI))
    assert (str(choice.setting), choice.fallback) == ("fp32", False)
    assert "bf16 not native" in choice.reason


@pytest.mark.parametrize(
    ("flags", "path"),
    [(AVX2_ONLY, "avx2"), (AVX512_VNNI, "avx512_vnni"), (AMX, "amx_int8")],
)
def test_int8_is_fastest_and_names_its_integer_path(flags: frozenset[str], path: str) -> None:
    choice = choose_setting(spec("fp32", "bf16", "int8"), Hardware(flags))
    assert str(choice.setting) == "int8"
    assert choice.reason.endswith(f"int8 on {path}") or f"int8 on {path} " in choice.reason


def test_int8_without_avx2_is_not_native() -> None:
    choice = choose_setting(spec("int8"), Hardware(frozenset({"sse4_2"})))
    assert (str(choice.setting), choice.fallback) == ("fp32", True)


@pytest.mark.parametrize(
    ("gpu", "expected", "fallback"),
    [(L4, "gpu:bf16", False), (T4, "gpu:fp16", False), (P4, "gpu:fp32", True)],
)
def test_a_gpu_runs_the_half_precision_its_compute_capability_has(
    gpu: Gpu, expected: str, fallback: bool
) -> None:
    choice = choose_setting(spec("fp32", "int8", "gpu:fp16", "gpu:bf16"), Hardware(AVX2_ONLY, gpu))
    assert (str(choice.setting), choice.fallback) == (expected, fallback)


def test_a_gpu_runs_the_fp32_reference_when_no_gpu_setting_was_validated() -> None:
    choice = choose_setting(spec("fp32", "int8"), Hardware(AVX2_ONLY, L4))
    assert (str(choice.setting), choice.fallback) == ("gpu:fp32", False)


def test_onnx_needs_the_cuda_provider_for_the_gpu_and_sklearn_never_uses_one() -> None:
    onnx = spec("fp32", "int8", backend="onnx")
    assert str(choose_setting(onnx, Hardware(AVX2_ONLY, L4)).setting) == "int8"
    assert str(choose_setting(onnx, Hardware(AVX2_ONLY, L4, onnx_cuda=True)).setting) == "gpu:fp32"
    assert str(choose_setting(spec("fp32", backend="sklearn"), Hardware(AMX, L4)).setting) == "fp32"


def test_cpu_flags_are_read_as_the_kernel_lists_them(tmp_path: Path) -> None:
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_vnni\n\nprocessor\t: 1\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp\n")
    assert read_cpu_flags(x86) == {"fpu", "avx2", "avx512_vnni"}
    assert read_cpu_flags(arm) == {"fp", "asimd", "asimddp"}
    assert read_cpu_flags(tmp_path / "missing") == frozenset()


def test_this_machine_is_detected_as_it_is() -> None:
    hardware = detect_hardware(with_gpu=True)
    assert hardware.cpu_flags == read_cpu_flags()
    assert (hardware.gpu is not None) == torch.cuda.is_available()
    if hardware.gpu is None:  # the device selection, on a CPU machine: the CPU
        choice = choose_setting(spec("fp32", "gpu:fp16"), hardware)
        assert str(choice.setting) == "fp32"


def _model_info() -> list[dict[str, str]]:
    families = text_string_to_metric_families(exposition().decode())
    return [
        sample.labels
        for family in families
        if family.name == "moderation_model_info"
        for sample in family.samples
        if sample.value == 1
    ]


def test_loading_on_a_node_without_the_feature_falls_back_logged_and_labelled(
    stored_models: StoredModels, caplog: pytest.LogCaptureFixture
) -> None:
    model = koala_spec(stored_models.koala, validated=["bf16"])
    catalog = Catalog(default_model=model.name, models=(model,))
    owner = SimpleNamespace(
        **{model_attribute(model.name): bentoml.models.get(stored_models.koala)}
    )
    with caplog.at_level(logging.INFO, logger="moderation.requests"):
        loaded = LoadedModels.load(catalog, owner, Hardware(AVX2_ONLY))
    assert loaded.score(model.name, ["hello"])  # it serves, in fp32
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if "runs" in r.getMessage()]
    assert line["severity"] == "WARNING"
    assert line["message"].startswith("model 'tiny-koala' runs transformers fp32: fallback")
    (labels,) = [labels for labels in _model_info() if labels["model"] == "tiny-koala"]
    assert labels["precision"] == "fp32"
    assert labels["device"] == "cpu"
    assert labels["backend"] == "transformers"
    assert labels["fallback"] == "true"
    assert "bf16 not native" in labels["reason"]


@pytest.mark.slow
def test_the_real_server_says_what_each_model_runs_and_why(server: RunningServer) -> None:
    with server.client() as client:
        text = client.get("/metrics").text
    families = text_string_to_metric_families(text)
    info = {
        sample.labels["model"]: sample.labels
        for family in families
        if family.name == "moderation_model_info"
        for sample in family.samples
    }
    # The session's catalog: profanity-check (sklearn) and two tiny transformers models, fp32.
    assert set(info) == {"profanity-check", "tiny-koala", "tiny-toxic"}
    for labels in info.values():
        assert (labels["precision"], labels["fallback"]) == ("fp32", "false")
    assert info["tiny-koala"]["device"] == ("gpu" if torch.cuda.is_available() else "cpu")
    lines = [line for line in server.logs().splitlines() if "runs transformers" in line]
    assert any("'tiny-koala' runs transformers" in line for line in lines)
