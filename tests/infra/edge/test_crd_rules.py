"""The CEL validation rules of the CRDs (`x-kubernetes-validations`), which JSON Schema ignores.

The API server checks these rules after applying the schema's defaults; so does this test, with
cel-python, on every custom resource of the plan that has a vendored schema (Gateway API, GKE
policies, Managed Prometheus, ...). Transition rules (`oldSelf`) only apply to updates and are left
out. A rule that cannot be evaluated fails the test rather than being skipped.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

import celpy

from tests.infra.plans import CRD_SCHEMAS, Plan

GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"


@cache
def _schema(api_version: str, kind: str) -> dict[str, Any] | None:
    group, _, version = api_version.rpartition("/")
    path = CRD_SCHEMAS / group / f"{kind.lower()}_{version}.json"
    return json.loads(path.read_text()) if group and path.exists() else None


def _child_schema(schema: dict[str, Any], key: str) -> dict[str, Any]:
    extra = schema.get("additionalProperties")
    return schema.get("properties", {}).get(key, extra if isinstance(extra, dict) else {})


def _defaulted(schema: dict[str, Any], value: Any) -> Any:
    """`value` with the schema's defaults filled in, as the API server stores it."""
    if isinstance(value, dict):
        result = {key: _defaulted(_child_schema(schema, key), item) for key, item in value.items()}
        for key, child in schema.get("properties", {}).items():
            if key not in result and "default" in child:
                result[key] = _defaulted(child, copy.deepcopy(child["default"]))
        return result
    if isinstance(value, list):
        return [_defaulted(schema.get("items", {}), item) for item in value]
    return value


@cache
def _program(rule: str) -> celpy.Runner:
    environment = celpy.Environment()
    return environment.program(environment.compile(rule))


def violations(schema: dict[str, Any], value: Any, path: str = "") -> tuple[list[str], int]:
    """Messages of the rules `value` breaks, and how many rules were evaluated."""
    broken: list[str] = []
    evaluated = 0
    for rule in schema.get("x-kubernetes-validations", []):
        if "oldSelf" in rule["rule"]:
            continue
        result = _program(rule["rule"]).evaluate({"self": celpy.json_to_cel(value)})
        assert not isinstance(result, celpy.CELEvalError), f"{path}: {rule['rule']}: {result}"
        evaluated += 1
        if not result:
            broken.append(f"{path}: {rule.get('message', rule['rule'])}")
    children: list[tuple[str, dict[str, Any], Any]] = []
    if isinstance(value, dict):
        children = [(f"{path}.{k}", _child_schema(schema, k), v) for k, v in value.items()]
    elif isinstance(value, list):
        children = [(f"{path}[{i}]", schema.get("items", {}), v) for i, v in enumerate(value)]
    for child_path, child_schema, child in children:
        child_broken, child_evaluated = violations(child_schema, child, child_path)
        broken += child_broken
        evaluated += child_evaluated
    return broken, evaluated


def _check(obj: dict[str, Any]) -> tuple[list[str], int]:
    schema = _schema(obj["apiVersion"], obj["kind"])
    assert schema is not None
    return violations(schema, _defaulted(schema, obj), obj["kind"])


def test_every_custom_resource_passes_its_crd_validation_rules(plan: Plan) -> None:
    custom = [o for o in plan.kubernetes_objects() if _schema(o["apiVersion"], o["kind"])]
    assert {"Gateway", "HTTPRoute", "GCPBackendPolicy"} <= {o["kind"] for o in custom}
    total = 0
    for obj in custom:
        broken, evaluated = _check(obj)
        assert broken == [], f"{obj['kind']} {obj['metadata']['name']}"
        total += evaluated
    assert total >= 50  # the Gateway and HTTPRoute schemas alone carry dozens of rules


def test_the_rules_catch_a_listener_that_mixes_http_and_tls(plan: Plan) -> None:
    gateway = copy.deepcopy(plan.one(GATEWAY)["inputs"])
    (http,) = [listener for listener in gateway["spec"]["listeners"] if listener["name"] == "http"]
    http["tls"] = {"mode": "Terminate", "certificateRefs": [{"name": "some-cert"}]}
    broken, _ = _check(gateway)
    assert broken == [
        "Gateway.spec.listeners: tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']"
    ]
