"""Vulnerability scanning in the cloud, for each stack: every image pushed to the registry is
scanned (Artifact Analysis), and GKE's security posture scans the workloads that run."""

from __future__ import annotations

from infra.registry import CONTAINER_SCANNING_API
from tests.infra.plans import Plan, stack_config


def test_registry_scans_every_pushed_image(plan: Plan) -> None:
    repository = plan.one("gcp:artifactregistry/repository:Repository")["inputs"]
    assert repository["format"] == "DOCKER"
    # INHERITED: the repository scans when the project's Container Scanning API is on.
    assert repository["vulnerabilityScanningConfig"] == {"enablementConfig": "INHERITED"}
    [api] = [
        service["inputs"]
        for service in plan.of_type("gcp:projects/service:Service")
        if service["inputs"]["service"] == CONTAINER_SCANNING_API
    ]
    assert api["project"] == stack_config(plan.stack)["gcp:project"]
    # Destroying the stack must not switch scanning off for the rest of the project.
    assert api["disableOnDestroy"] is False


def test_cluster_checks_workload_posture(plan: Plan) -> None:
    """GKE dropped workload vulnerability scanning (the API deprecates `vulnerabilityMode`)."""
    for region, cluster in plan.each_region("gcp:container/cluster:Cluster").items():
        assert cluster["inputs"]["securityPostureConfig"] == {"mode": "BASIC"}, region
