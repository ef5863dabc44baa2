"""Serving capacity from the measured per-pod throughput: the HPA's in-flight target and the model
pool at each stack's expected peak (`make cost` prints it)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from infra.config import parse_stack_config
from infra.sizing import inference_threads
from tests.infra.plans import STACKS, stack_config
from tools.capacity import (
    HPA_HEADROOM,
    MEASURED,
    PEAK_TO_MEAN,
    in_flight_target,
    pod_texts_per_s,
    serving_plan,
)
from tools.cost import USAGE

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("stack", STACKS)
def test_hpa_in_flight_target_follows_from_the_measured_per_pod_throughput(stack: str) -> None:
    config = parse_stack_config(stack_config(stack))
    cpu = config.workload.resources.cpu_request
    objective = config.observability.slo.latency_threshold_seconds
    # Little's law at the latency objective, less the scale-out headroom, from the documented
    # per-pod figure (docs/performance.md "Capacity" quotes the same MEASURED numbers).
    per_pod = inference_threads(cpu) / MEASURED.cpu_seconds_per_text * MEASURED.service_efficiency
    expected = max(math.floor(per_pod * objective * HPA_HEADROOM), 1)
    assert config.workload.autoscaling.target_in_flight_requests == expected
    assert in_flight_target(cpu, objective) == expected


def test_the_documented_per_pod_figures_are_the_measured_ones() -> None:
    doc = (REPO_ROOT / "docs" / "performance.md").read_text()
    assert f"{MEASURED.cpu_seconds_per_text} CPU seconds per text" in doc
    assert f"service/limit {MEASURED.service_efficiency}" in doc
    for stack in STACKS:
        cpu = parse_stack_config(stack_config(stack)).workload.resources.cpu_request
        assert f"{stack}: {pod_texts_per_s(cpu):.1f} texts/s per pod" in doc


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
