"""Serving capacity per machine family and setting: the table's basis, the HPA's in-flight target
of each stack from the row of what its pods run, and the model pool at the expected peak."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from infra.config import parse_stack_config
from infra.machines import FAMILIES
from infra.sizing import inference_threads, node_hardware
from service.catalog import PRECISIONS, Backend, Device, Runtime, Setting
from service.hardware import choose_setting
from tests.infra.plans import STACKS, stack_config
from tools.capacity import (
    CAPACITY,
    HPA_HEADROOM,
    PEAK_TO_MEAN,
    SERVICE_EFFICIENCY,
    Estimated,
    Measured,
    NoCapacityRow,
    capacity_row,
    in_flight_target,
    node_throughputs,
    pod_texts_per_s,
    serving_plan,
    serving_row,
)
from tools.cost import USAGE

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_measured_rows_carry_command_and_date_and_estimates_name_their_source() -> None:
    measured = {row.key for row in CAPACITY if isinstance(row.basis, Measured)}
    assert "c3 transformers fp32" in measured  # the 0.314 s figure and its provenance
    for row in CAPACITY:
        if isinstance(row.basis, Measured):
            assert row.basis.command and row.basis.machine
            assert len(row.basis.date) == len("2026-12-03")
        else:
            assert isinstance(row.basis, Estimated)
            assert row.basis.from_row in measured or row.gpu_type is not None, row.key
            assert row.basis.how
        assert row.seconds_per_text > 0
    assert len({row.key for row in CAPACITY}) == len(CAPACITY)


@pytest.mark.parametrize("family", sorted(set(FAMILIES) - {"g2"}))
def test_every_cpu_family_has_a_row_for_each_setting_it_runs_natively(family: str) -> None:
    machine_type = f"{family}-standard-8"
    for backend in (Backend.TRANSFORMERS, Backend.ONNX):
        for precision in PRECISIONS[backend, Device.CPU]:
            setting = Setting(precision=precision)
            runtime = Runtime(backend=backend, validated=(setting,))
            choice = choose_setting(runtime, node_hardware(machine_type))
            if not choice.fallback:
                assert capacity_row(machine_type, backend, choice.setting).family == family


def test_a_setting_without_a_row_is_an_error_not_a_guess() -> None:
    with pytest.raises(NoCapacityRow, match="no capacity row for n2d transformers bf16"):
        capacity_row("n2d-standard-8", Backend.TRANSFORMERS, Setting.model_validate("bf16"))


@pytest.mark.parametrize("stack", STACKS)
def test_hpa_in_flight_target_follows_the_row_of_what_the_stacks_pods_run(
    stack: str, plans: dict
) -> None:
    config = parse_stack_config(stack_config(stack))
    row = serving_row(plans[stack])
    choice = config.serving_choice()
    assert choice is not None
    assert (row.family, row.setting) == (
        config.node_pools.model.machine_type.split("-")[0],
        choice.setting,
    )
    cpu = config.workload.resources.cpu_request
    objective = config.observability.slo.latency_threshold_seconds
    # Little's law at the latency objective, less the scale-out headroom.
    per_pod = inference_threads(cpu) / row.seconds_per_text * SERVICE_EFFICIENCY
    expected = max(math.floor(per_pod * objective * HPA_HEADROOM), 1)
    assert config.workload.autoscaling.target_in_flight_requests == expected
    assert in_flight_target(cpu, objective, row) == expected


def test_the_target_changes_with_the_family_and_setting() -> None:
    bf16 = Runtime(backend=Backend.TRANSFORMERS, validated=(Setting.model_validate("bf16"),))
    c3 = choose_setting(bf16, node_hardware("c3-standard-8"))
    c3_row = capacity_row("c3-standard-8", Backend.TRANSFORMERS, c3.setting)
    n2_row = capacity_row("n2-standard-8", Backend.TRANSFORMERS, Setting.model_validate("fp32"))
    assert str(c3_row.setting) == "bf16"
    assert in_flight_target("3.5", 1.0, c3_row) > in_flight_target("3.5", 1.0, n2_row)


def test_the_documented_per_pod_figures_are_the_table_ones(plans: dict) -> None:
    doc = (REPO_ROOT / "docs" / "performance.md").read_text()
    for stack in STACKS:
        cpu = parse_stack_config(stack_config(stack)).workload.resources.cpu_request
        row = serving_row(plans[stack])
        assert f"{row.seconds_per_text} CPU seconds per text" in doc
        assert f"{stack}: {pod_texts_per_s(cpu, row):.1f} texts/s per pod" in doc


def test_serving_plan_sizes_the_model_pool_for_the_expected_peak(plans: dict) -> None:
    sized = serving_plan(plans["prod"], requests_millions=100)
    assert sized.peak_texts_per_s == pytest.approx(100e6 / (730 * 3600) * PEAK_TO_MEAN)
    assert sized.pods_at_peak == math.ceil(sized.peak_texts_per_s / sized.pod_texts_per_s)
    assert sized.nodes_at_peak == math.ceil(sized.pods_at_peak / sized.pods_per_node)
    assert sized.pods_per_node == 2  # n2-standard-8, 3.5 CPU pods


@pytest.mark.parametrize("stack", STACKS)
def test_each_stack_can_scale_to_its_expected_peak(plans: dict, stack: str) -> None:
    sized = serving_plan(plans[stack], USAGE[stack].requests_millions)
    config = parse_stack_config(stack_config(stack))
    assert sized.pods_at_peak <= config.workload.autoscaling.max_replicas
    assert sized.nodes_at_peak <= sized.max_nodes


def test_the_comparison_runs_each_node_in_the_setting_the_service_would_choose() -> None:
    model = Runtime(
        backend=Backend.TRANSFORMERS,
        validated=tuple(Setting.model_validate(t) for t in ("fp32", "bf16", "int8", "gpu:fp16")),
    )
    chosen = {node.machine_type: str(node.row.setting) for node in node_throughputs(model)}
    assert chosen["c3-standard-8"] == "int8"  # fastest validated on AMX
    assert chosen["n2d-standard-8"] == "int8"  # AVX2's integer path
    assert chosen["g2-standard-4"] == "gpu:fp16"  # the validated GPU setting on the L4
    assert chosen["n1-standard-4"] == "gpu:fp16"  # a T4 runs fp16 too
