"""The custom metrics adapter runs the release Google's own production manifest deploys (a copy
of it, with its source and date, in tests/infra/edge/data/), not a tag the kit once pinned."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.infra.plans import Plan

UPSTREAM = Path(__file__).parent / "data" / "k8s-stackdriver-adapter_new_resource_model.yaml"


def _upstream_image() -> str:
    (deployment,) = [
        doc
        for doc in yaml.safe_load_all(UPSTREAM.read_text())
        if doc and doc["kind"] == "Deployment"
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container["image"]


def test_the_adapter_runs_the_vendors_current_release(plan: Plan) -> None:
    adapters = plan.kubernetes_object_in_each_region(
        "Deployment", "custom-metrics-stackdriver-adapter"
    )
    for region, adapter in adapters.items():
        (container,) = adapter["spec"]["template"]["spec"]["containers"]
        assert container["image"] == _upstream_image(), region
