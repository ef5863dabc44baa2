"""Every Kubernetes object in the plan is valid for the cluster's Kubernetes version.

Core kinds are checked against the Kubernetes OpenAPI schema of the version the stack pins
(kubernetes-validate, strict: unknown fields are errors); custom resources (Gateway API, GKE
policies, Managed Prometheus) against their CRD JSON Schemas in tests/infra/schemas/crds.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from tests.infra.plans import CRD_SCHEMAS, KUBERNETES_API_GROUPS, Plan, stack_config


def _group_version(obj: dict[str, Any]) -> tuple[str, str]:
    group, _, version = obj["apiVersion"].rpartition("/")
    return group, version


def _kubernetes_version(stack: str) -> str:
    return f"{stack_config(stack)['moderation:cluster']['kubernetesVersion']}.0"


@cache
def _crd_schema(group: str, kind: str, version: str) -> dict[str, Any]:
    path = CRD_SCHEMAS / group / f"{kind.lower()}_{version}.json"
    assert path.exists(), f"no schema for {group}/{version} {kind} (expected {path})"
    return json.loads(path.read_text())


# GKE installs the `net.gke.io` CRDs with the MCS feature and publishes no schema of them (none
# found in GKE's docs or public repositories, 2026-12-03): a ServiceExport is a name and a
# namespace, and `_validate` holds it to that; only a real cluster validates it further.
UNPUBLISHED_SCHEMAS = {("net.gke.io", "ServiceExport")}


def _validate(obj: dict[str, Any], kubernetes_version: str) -> None:
    group, version = _group_version(obj)
    if (group, obj["kind"]) in UNPUBLISHED_SCHEMAS:
        if set(obj) != {"apiVersion", "kind", "metadata"} or not {
            "name",
            "namespace",
        } <= set(obj["metadata"]):
            raise jsonschema.ValidationError(f"more or less than a name and a namespace: {obj}")
    elif group in KUBERNETES_API_GROUPS:
        kubernetes_validate.validate(obj, kubernetes_version, strict=True)
    else:
        jsonschema.validate(obj, _crd_schema(group, obj["kind"], version))


def test_schemas_exist_for_the_pinned_version(plan: Plan) -> None:
    """kubernetes-validate ships schemas offline; the stack's version must be among them."""
    assert _kubernetes_version(plan.stack) in kubernetes_validate.utils.all_versions()


def test_every_kubernetes_object_validates(plan: Plan) -> None:
    version = _kubernetes_version(plan.stack)
    objects = list(plan.kubernetes_objects())
    assert len(objects) >= 8
    for obj in objects:
        try:
            _validate(obj, version)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as error:
            pytest.fail(f"{obj['kind']} {obj['metadata'].get('name')}: {error}")


def _deployment(plans: dict[str, Plan]) -> dict[str, Any]:
    """The stable Deployment of prod's last region (each region's copy validates above)."""
    deployments = plans["prod"].each_region("kubernetes:apps/v1:Deployment", "moderation-stable")
    return copy.deepcopy(deployments[plans["prod"].regions[-1]]["inputs"])


def test_the_validator_rejects_a_broken_deployment(plans: dict[str, Plan]) -> None:
    """Guards the test above: a wrong type or an unknown field must not pass."""
    version = _kubernetes_version("prod")
    wrong_type = _deployment(plans)
    wrong_type["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(wrong_type, version)
    unknown_field = _deployment(plans)
    unknown_field["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(unknown_field, version)


def test_the_validator_rejects_a_broken_pod_monitoring(plans: dict[str, Plan]) -> None:
    scrapes = plans["prod"].each_region("kubernetes:monitoring.googleapis.com/v1:PodMonitoring")
    for resource in scrapes.values():
        monitoring = copy.deepcopy(resource["inputs"])
        monitoring["spec"]["endpoints"][0]["interval"] = "every minute"
        with pytest.raises(jsonschema.ValidationError):
            _validate(monitoring, _kubernetes_version("prod"))


def test_the_validator_rejects_a_service_export_with_a_spec(plans: dict[str, Plan]) -> None:
    """Guards the name-and-namespace check of the one kind without a published schema."""
    for export in plans["prod"].of_type("kubernetes:net.gke.io/v1:ServiceExport"):
        _validate(export["inputs"], _kubernetes_version("prod"))
        with pytest.raises(jsonschema.ValidationError):
            _validate({**export["inputs"], "spec": {}}, _kubernetes_version("prod"))
