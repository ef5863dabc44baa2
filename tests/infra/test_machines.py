"""The machine table: node room by GKE's published reservations, and no shape guessed."""

from __future__ import annotations

import pytest

from infra.machines import (
    SYSTEM_DAEMONS_CPU,
    SYSTEM_DAEMONS_MEMORY_GIB,
    UnknownMachineType,
    room_on,
    shape_of,
)


def test_room_on_a_node_follows_gkes_published_reservations() -> None:
    # n2-standard-8: 8 vCPU, 32 GiB. CPU: 6% of core 1, 1% of core 2, 0.5% of cores 3-4,
    # 0.25% of the rest. Memory: 25% of 4 GiB, 20% of 4, 10% of 8, 6% of the last 16, plus
    # 100 MiB eviction threshold; image streaming: 10%, 8%, 4%, 2.4% of the same tiers.
    room = room_on("n2-standard-8")
    assert room.cpu == pytest.approx(
        8 - (0.06 + 0.01 + 2 * 0.005 + 4 * 0.0025) - SYSTEM_DAEMONS_CPU
    )
    kubelet = 4 * 0.25 + 4 * 0.20 + 8 * 0.10 + 16 * 0.06 + 100 / 1024
    streaming = 4 * 0.10 + 4 * 0.08 + 8 * 0.04 + 16 * 0.024
    assert room.memory_gib == pytest.approx(32 - kubelet - streaming - SYSTEM_DAEMONS_MEMORY_GIB)


@pytest.mark.parametrize("machine_type", ["a3-highgpu-8g", "n2-custom-4-8192", "t2d-highmem-8"])
def test_unknown_shapes_are_not_guessed(machine_type: str) -> None:
    with pytest.raises(UnknownMachineType):
        room_on(machine_type)


def test_shapes_follow_each_familys_memory_ratio_and_bundled_gpus() -> None:
    assert shape_of("n1-standard-4").memory_gib == 15.0
    assert shape_of("c3-highcpu-8").memory_gib == 16.0
    assert shape_of("e2-medium").vcpus == 1.0
    assert shape_of("g2-standard-24").bundled_gpus == 2
