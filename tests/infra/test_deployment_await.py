"""The first `pulumi up` waits for each release's Deployment to become ready. pulumi-kubernetes
gives up after its default of 10 minutes, and the Deployment controller reports failure once its
`progressDeadlineSeconds` (default 600) pass without progress. A first dev pod waits for a spot
node from zero, an image pull of several GB, its key file mount and a start-up allowed
`workload.startupTimeoutSeconds`; a rolling update does that once per surge batch. Both limits
must cover it (the engine's `customTimeouts`, recorded by the plan tool, and the spec's deadline),
computed here from the Deployment as planned (its start-up probe, `minReadySeconds`, surge, the
HPA's minimum) and the waits before start-up that infra/workload.py estimates.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from infra.workload import IMAGE_PULL_SECONDS, KEY_FILE_MOUNT_SECONDS, NODE_FROM_ZERO_SECONDS
from tests.infra.plans import Plan

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def seconds(duration: str) -> int:
    """A Go duration as Pulumi's customTimeouts take it ("1h30m", "45m")."""
    match = DURATION.fullmatch(duration)
    assert match and duration, f"not a duration: {duration!r}"
    hours, minutes, secs = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + secs


def first_pod_seconds(spec: dict[str, Any]) -> int:
    container = spec["template"]["spec"]["containers"][0]
    probe = container["startupProbe"]
    start_up = (
        probe.get("initialDelaySeconds", 0) + probe["failureThreshold"] * probe["periodSeconds"]
    )
    before_start_up = NODE_FROM_ZERO_SECONDS + IMAGE_PULL_SECONDS + KEY_FILE_MOUNT_SECONDS
    return before_start_up + start_up + spec.get("minReadySeconds", 0)


def _surge_batches(spec: dict[str, Any], replicas: int) -> int:
    surge = spec["strategy"]["rollingUpdate"]["maxSurge"]
    return math.ceil(replicas / surge)


def _release_deployments(plan: Plan) -> list[dict[str, Any]]:
    return [
        d for d in plan.of_type(DEPLOYMENT) if d["inputs"]["metadata"]["namespace"] == "moderation"
    ]


def test_the_deployment_await_outlasts_a_first_pod(plan: Plan) -> None:
    for deployment in _release_deployments(plan):
        spec = deployment["inputs"]["spec"]
        timeouts = plan.options[Plan.address(deployment)]["customTimeouts"]
        assert seconds(timeouts["create"]) >= first_pod_seconds(spec), deployment["name"]
        assert spec["progressDeadlineSeconds"] >= first_pod_seconds(spec), deployment["name"]


def test_the_update_await_outlasts_a_rollout_of_the_minimum_replicas(plan: Plan) -> None:
    min_replicas = {
        h["inputs"]["spec"]["scaleTargetRef"]["name"]: h["inputs"]["spec"]["minReplicas"]
        for h in plan.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
    }
    for deployment in _release_deployments(plan):
        spec = deployment["inputs"]["spec"]
        name = deployment["inputs"]["metadata"]["name"]
        batches = _surge_batches(spec, min_replicas.get(name, spec.get("replicas", 1)))
        timeouts = plan.options[Plan.address(deployment)]["customTimeouts"]
        assert seconds(timeouts["update"]) >= batches * first_pod_seconds(spec), name


def test_planted_default_timeout_is_caught() -> None:
    """Planted: the SDK's default (10 minutes; no customTimeouts is an empty string)."""
    probe = {"failureThreshold": 60, "periodSeconds": 10}
    spec = {"template": {"spec": {"containers": [{"startupProbe": probe}]}}, "minReadySeconds": 10}
    assert seconds("10m") < first_pod_seconds(spec)
    with pytest.raises(AssertionError, match="not a duration"):
        seconds("")
