"""The plan tool itself: document shape, normalisation, secrets kept out of the file."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from pulumi.runtime import MockCallArgs

from tests.infra.plans import ROOT, Plan, built_bentos, plan_project, stack_config
from tools.plan import GET_PROJECT, REDACTED, PlanMocks, normalise


def test_plan_document_has_the_contract_shape(plan: Plan) -> None:
    assert set(plan) == {"project", "stack", "resources", "outputs"}
    assert plan["project"] == "moderation"
    for resource in plan["resources"]:
        assert set(resource) == {"type", "name", "inputs", "dependencies"}


def test_integral_numbers_are_ints_and_secrets_are_hidden() -> None:
    secret = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "x"}
    assert normalise({"a": 3.0, "b": [1.5, 2.0], "c": secret}) == {
        "a": 3,
        "b": [1.5, 2],
        "c": REDACTED,
    }


def test_kubeconfig_never_reaches_the_plan_in_plaintext(plan: Plan) -> None:
    assert plan.outputs["kubeconfig"] == REDACTED
    for region, provider in plan.each_region("pulumi:providers:kubernetes").items():
        assert provider["inputs"]["kubeconfig"] == REDACTED, region
    assert "certificate-authority-data" not in json.dumps(plan)


def test_numbers_from_config_arrive_as_ints(plan: Plan) -> None:
    hpas = plan.each_region("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
    for region, hpa in hpas.items():
        assert isinstance(hpa["inputs"]["spec"]["minReplicas"], int), region


def test_the_same_config_gives_the_same_plan_byte_for_byte(plans, plan_variant) -> None:
    """Registration order varies with thread timing; the written plan must not."""
    again = plan_variant("dev", lambda config: None)
    assert json.dumps(again, sort_keys=True) == json.dumps(plans["dev"], sort_keys=True)
    assert again["resources"] == plans["dev"]["resources"]


def test_an_invoke_without_a_mock_fails_instead_of_answering_nothing() -> None:
    mocks = PlanMocks("moderation-dev")
    project = mocks.call(MockCallArgs(GET_PROJECT, {"projectId": "moderation-dev"}, ""))
    assert project["number"].isdigit()
    with pytest.raises(NotImplementedError, match="gcp:compute/getZones:getZones"):
        mocks.call(MockCallArgs("gcp:compute/getZones:getZones", {}, ""))


def test_plan_is_quiet_and_warns_about_each_committed_placeholder(plan: Plan) -> None:
    """`make plan`: two summary lines (resources; where the stack serves from), then the
    placeholders a real deploy would refuse."""
    lines = plan.log.splitlines()
    assert lines[0].startswith(f"{len(plan['resources'])} resources of ")
    assert lines[1] == SERVING[plan.stack]
    assert lines[2].startswith(f"warning: {len(lines) - 3} placeholder value(s) in Pulumi.")
    assert "moderation:budget.billingAccount: '000000-000000-000000'" in plan.log
    assert ("moderation:release.stable.image:" in plan.log) is (plan.stack == "prod")
    assert "moderation:edge.domains[0]:" in plan.log
    assert "(documentation IP range" in plan.log
    assert "apiKeyHashes" not in plan.log  # not committed: the plan's own stand-in


# dev: one zonal cluster behind the single-cluster Gateway; prod: two regional clusters behind
# one multi-cluster Gateway on one global address (docs/deploy.md "Serving from several regions").
SERVING = {
    "dev": "serving: 1 zonal cluster(s) (europe-west1-b) behind 1 Gateway(s) "
    "(gke-l7-global-external-managed) on 1 global address(es)",
    "prod": "serving: 2 regional cluster(s) (europe-west1, us-central1) behind 1 Gateway(s) "
    "(gke-l7-global-external-managed-mc) on 1 global address(es)",
}


def test_verbose_plan_prints_a_count_per_resource_type(tmp_path: Path) -> None:
    output = tmp_path / "dev.json"
    (tmp_path / "project").mkdir()
    project = plan_project(tmp_path / "project", built_bentos(stack_config("dev")))
    command = [sys.executable, "-m", "tools.plan", "--stack", "dev", "--output", str(output)]
    result = subprocess.run(
        [*command, "-v", "--project-dir", str(project)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    counts = Counter(resource["type"] for resource in json.loads(output.read_text())["resources"])
    lines = result.stdout.splitlines()
    assert [line.split() for line in lines[: len(counts)]] == [
        [resource_type, str(count)] for resource_type, count in sorted(counts.items())
    ]
    assert lines[len(counts)].startswith(f"{sum(counts.values())} resources of {len(counts)} types")
