"""Serving capacity of a plan, from what `make bench` measured: texts per second a model pod
sustains, the HPA's in-flight target that follows from it, and the model pool at the expected peak
(printed by `make cost`). Pods per node come from the program's own sizing (infra/sizing.py) and
the machine table (infra/machines.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.machines import UnknownMachineType, room_on
from infra.node_pools import POOL_LABEL
from infra.sizing import inference_threads, pods_per_node
from tools.plan_document import HOURS_PER_MONTH, PlanError, node_count_range


@dataclass(frozen=True)
class MeasuredServing:
    """What one inference thread of the production-size model does, as measured by `make bench`.

    CPU seconds per text (not wall time) are the figure to scale from: the benchmark machine is
    shared, and other work there stretches wall time but hardly the CPU a text costs.
    """

    cpu_seconds_per_text: float
    """`limit` at batch 1 in the serving precision: one text of bench/texts.py's mix."""
    service_efficiency: float
    """`service` texts/s over `limit` texts/s at their best levels, in the same run."""
    source: str


# fp32 (what the shipped catalog serves KoalaAI/Text-Moderation in), one thread, one text at a
# time: the mean fp32 reference of four `make validate-precision` runs on the benchmark model,
# 2026-12-02 (0.298, 0.333, 0.326, 0.301). The service matched the limit at its best level (1.08x in
# bench/results/2026-12-02.md, noise on a shared machine): counted as 1.0.
MEASURED = MeasuredServing(
    cpu_seconds_per_text=0.314,
    service_efficiency=1.0,
    source="make bench / make validate-precision, 2026-12-02",
)
# Scale out while a pod still has room: new pods take minutes (node, image, model load).
HPA_HEADROOM = 0.7
# Busiest hour over the month's mean rate, for sizing the model pool.
PEAK_TO_MEAN = 3.0


def pod_texts_per_s(cpu_request: str) -> float:
    """Texts per second one model pod sustains (one text per request)."""
    threads = inference_threads(cpu_request)
    return threads / MEASURED.cpu_seconds_per_text * MEASURED.service_efficiency


def in_flight_target(cpu_request: str, latency_objective_s: float) -> int:
    """The HPA's per-pod in-flight target: by Little's law a pod answering X texts/s keeps
    X x R requests in flight at response time R, so at the latency objective, less headroom."""
    return max(math.floor(pod_texts_per_s(cpu_request) * latency_objective_s * HPA_HEADROOM), 1)


@dataclass(frozen=True)
class ServingPlan:
    """The model pods of a plan at its expected peak."""

    pod_texts_per_s: float
    peak_texts_per_s: float
    pods_at_peak: int
    pods_per_node: int
    nodes_at_peak: int
    max_nodes: int


def serving_plan(plan: Mapping[str, Any], requests_millions: float) -> ServingPlan:
    """Size the model pool of `plan` for `requests_millions` texts a month (one per request)."""
    (pod,) = [
        r["inputs"]["spec"]["template"]["spec"]
        for r in plan["resources"]
        if r["type"] == "kubernetes:apps/v1:Deployment"
        and POOL_LABEL in (r["inputs"]["spec"]["template"]["spec"].get("nodeSelector") or {})
        and r["inputs"]["metadata"]["name"].endswith("-stable")
    ]
    requests = pod["containers"][0]["resources"]["requests"]
    (pool,) = [
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
    per_node = pods_per_node(room, requests["cpu"], requests["memory"])
    per_pod = pod_texts_per_s(requests["cpu"])
    peak = requests_millions * 1e6 / (HOURS_PER_MONTH * 3600) * PEAK_TO_MEAN
    pods = max(math.ceil(peak / per_pod), 1)
    return ServingPlan(
        pod_texts_per_s=per_pod,
        peak_texts_per_s=peak,
        pods_at_peak=pods,
        pods_per_node=per_node,
        nodes_at_peak=math.ceil(pods / per_node),
        max_nodes=node_count_range(pool)[1],
    )
