"""Reading a plan document (`build/plan/<stack>.json`, written by tools/plan.py): the resources
of a type, the cluster's region, and node and pod counts at minimum and maximum scale. Shared by
the cost and capacity tools."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

HOURS_PER_MONTH = 730
"""The month both tools count in (Google's billing month)."""


class PlanError(ValueError):
    """The plan holds something the tools cannot price or size."""


def resources_of(plan: Mapping[str, Any], type_token: str) -> list[Mapping[str, Any]]:
    return [r["inputs"] for r in plan["resources"] if r["type"] == type_token]


def location_region(location: str) -> str:
    """The region of a location: a zone (`europe-west1-b`) less its letter, a region as is."""
    return location if location.count("-") == 1 else location.rsplit("-", 1)[0]


def regions_of(plan: Mapping[str, Any]) -> list[str]:
    """Every serving region (one cluster each), the stack's own first: its cluster's logical
    name is the bare one, which sorts before every `<name>-<region>` of the others."""
    clusters = resources_of(plan, "gcp:container/cluster:Cluster")
    if not clusters:
        raise PlanError("expected a GKE cluster in the plan, found none")
    return [location_region(cluster["location"]) for cluster in clusters]


def region_of(plan: Mapping[str, Any]) -> str:
    """The stack's own region (with several, the registry and config cluster are there)."""
    return regions_of(plan)[0]


def node_count_range(pool: Mapping[str, Any]) -> tuple[int, int]:
    """Nodes at minimum and maximum scale, over all of the pool's zones."""
    autoscaling = pool.get("autoscaling")
    zones = max(len(pool.get("nodeLocations") or []), 1)
    if autoscaling:
        if "totalMinNodeCount" in autoscaling or "totalMaxNodeCount" in autoscaling:
            return autoscaling.get("totalMinNodeCount", 0), autoscaling["totalMaxNodeCount"]
        return autoscaling.get("minNodeCount", 0) * zones, autoscaling["maxNodeCount"] * zones
    fixed = pool.get("nodeCount", pool.get("initialNodeCount", 1)) * zones
    return fixed, fixed


def hpa_replica_range(plan: Mapping[str, Any]) -> tuple[int, int]:
    """Serving pods at minimum and maximum scale, summed over every HorizontalPodAutoscaler."""
    hpas = [
        r["inputs"]["spec"]
        for r in plan["resources"]
        if r["type"].endswith(":HorizontalPodAutoscaler")
    ]
    return sum(h.get("minReplicas", 1) for h in hpas), sum(h["maxReplicas"] for h in hpas)
