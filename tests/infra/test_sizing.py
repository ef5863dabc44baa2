"""Pods per node on the machine table's node room, and the config check built on it: a pod larger
than its node or an HPA maximum the pool cannot hold is refused before deployment."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from infra.config import ConfigError, parse_stack_config, secret_settings
from infra.machines import room_on
from infra.sizing import cpu_cores, memory_gib, pods_per_node
from tests.infra.plans import STACKS, stack_config


def test_quantities() -> None:
    assert cpu_cores("500m") == 0.5
    assert cpu_cores("3.5") == 3.5
    assert memory_gib("512Mi") == 0.5
    assert memory_gib("6Gi") == 6
    with pytest.raises(ValueError, match="not a binary memory quantity"):
        memory_gib("6G")


def test_pods_per_node_is_bounded_by_the_scarcer_resource() -> None:
    room = room_on("n2-standard-8")
    assert pods_per_node(room, "3.5", "6Gi") == 2  # CPU-bound: 7.51 / 3.5
    assert pods_per_node(room, "1", "12Gi") == 2  # memory-bound: 26.4 / 12


def _config(stack: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """A committed stack's config (secrets included), edited by `change`."""
    config = {**copy.deepcopy(stack_config(stack)), **secret_settings()}
    change(config)
    return config


@pytest.mark.parametrize("stack", STACKS)
def test_committed_stacks_have_room_for_their_maximum(stack: str) -> None:
    config = parse_stack_config(_config(stack, lambda c: None))
    room = room_on(config.node_pools.model.machine_type)
    resources = config.workload.resources
    per_node = pods_per_node(room, resources.cpu_request, resources.memory_request)
    assert per_node * config.node_pools.model.max_nodes > config.workload.autoscaling.max_replicas


def test_a_pod_larger_than_its_node_is_a_config_error() -> None:
    def huge(config: dict[str, Any]) -> None:
        config["moderation:workload"]["resources"].update(cpuRequest="16", cpuLimit="16")

    with pytest.raises(
        ConfigError, match=r"do not fit on one n2-standard-4 node of nodePools\.model"
    ):
        parse_stack_config(_config("dev", huge))


def test_an_hpa_maximum_the_pool_cannot_hold_is_a_config_error() -> None:
    def too_many(config: dict[str, Any]) -> None:
        config["moderation:workload"]["autoscaling"]["maxReplicas"] = 30

    with pytest.raises(ConfigError) as raised:
        parse_stack_config(_config("prod", too_many))
    message = str(raised.value)
    assert (
        "moderation:nodePools.model.maxNodes 10 x 2 pod(s) per n2-standard-8 node holds 20 pods"
        in message
    )
    assert "fewer than the 31" in message


def test_a_canary_needs_room_for_its_minimum_too() -> None:
    def canary_at_the_edge(config: dict[str, Any]) -> None:
        # dev: 3 nodes x 2 pods = 6 = maxReplicas 5 + 1 surge: full without a canary.
        config["moderation:workload"]["autoscaling"]["maxReplicas"] = 5
        stable = config["moderation:release"]["stable"]
        config["moderation:release"]["canary"] = {
            **stable,
            "bento": "moderation:0.2.0",
            "weight": 10,
        }

    with pytest.raises(ConfigError, match="fewer than the 7"):
        parse_stack_config(_config("dev", canary_at_the_edge))


def test_a_shadow_needs_room_for_its_minimum_as_well() -> None:
    def canary_and_shadow(config: dict[str, Any]) -> None:
        # dev: 3 nodes x 2 pods = 6 = maxReplicas 4 + 1 surge + a canary's minimum of 1.
        config["moderation:workload"]["autoscaling"]["maxReplicas"] = 4
        stable = config["moderation:release"]["stable"]
        config["moderation:release"]["canary"] = {
            **stable,
            "bento": "moderation:0.2.0",
            "weight": 5,
        }
        config["moderation:release"]["shadow"] = {**stable, "bento": "moderation:0.3.0"}

    with pytest.raises(ConfigError, match="fewer than the 7"):
        parse_stack_config(_config("dev", canary_and_shadow))


def test_gpu_pods_are_bounded_by_the_gpus_per_node() -> None:
    def on_gpus(config: dict[str, Any]) -> None:
        config["moderation:nodePools"]["gpu"] = {
            "machineType": "g2-standard-8",
            "minNodes": 0,
            "maxNodes": 3,
            "acceleratorType": "nvidia-l4",
        }
        config["moderation:workload"]["nodePool"] = "gpu"

    # g2-standard-8 has room for two 1.5-CPU pods but only one L4: 3 nodes hold 3 < 3 + 1.
    with pytest.raises(ConfigError, match=r"nodePools\.gpu\.maxNodes 3 x 1 pod\(s\)"):
        parse_stack_config(_config("dev", on_gpus))
