"""Lifecycle replay: the documented rollout (docs/models.md: shadow, canary, promote, roll back)
and the teardown, replayed as consecutive plans of the dev stack, which builds its images.

What the providers do between two plans decides what is safe (pulumi-docker-build
`provider/internal/image.go`): an image resource whose inputs change is rebuilt and pushed again
under the same tag, which the registry's immutable tags refuse once the digest differs; deleting
an image resource deletes its manifest by digest from the registry, even while a track still
runs it; and with `buildOnPreview` (default true) every preview builds. So: one image resource
per Bento version, named by the version and unchanged while the version is live, never deleted
with its manifest, and no build on preview.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.infra.plans import Plan
from tools.plan import mock_image_digest

IMAGE = "docker-build:index:Image"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CANDIDATE = "moderation:0.2.0"


def _release(config: dict[str, Any]) -> dict[str, Any]:
    return config["moderation:release"]


def _stable_only(config: dict[str, Any]) -> None:
    _release(config).pop("shadow", None)
    _release(config).pop("canary", None)


def _shadow(config: dict[str, Any]) -> None:
    _release(config)["shadow"] = {"bento": CANDIDATE}


def _canary(config: dict[str, Any]) -> None:
    _release(config)["canary"] = {"bento": CANDIDATE, "weight": 10}


def _promote(config: dict[str, Any]) -> None:
    _release(config)["stable"] = {"bento": CANDIDATE}


STEPS: list[tuple[str, list[Callable[[dict[str, Any]], None]]]] = [
    ("stable", [_stable_only]),
    ("shadow", [_stable_only, _shadow]),
    ("canary", [_stable_only, _canary]),
    ("promoted", [_stable_only, _promote]),
]


@pytest.fixture(scope="module")
def rollout(plan_variant: Callable[..., Plan]) -> list[tuple[str, Plan]]:
    def apply(changes: list[Callable[[dict[str, Any]], None]]) -> Callable[[dict], None]:
        def change(config: dict[str, Any]) -> None:
            for step in changes:
                step(config)

        return change

    return [(name, plan_variant("dev", apply(changes))) for name, changes in STEPS]


def _images(plan: Plan) -> dict[str, dict[str, Any]]:
    return {Plan.address(image): image for image in plan.of_type(IMAGE)}


def _version(image: dict[str, Any]) -> str:
    (tag,) = image["inputs"]["tags"]
    return tag.rsplit(":", 1)[1]


def _running_digests(plan: Plan) -> set[str]:
    return {
        re.sub(r".*@", "", d["inputs"]["spec"]["template"]["spec"]["containers"][0]["image"])
        for d in plan.of_type(DEPLOYMENT)
        if d["inputs"]["metadata"]["namespace"] == "moderation"
    }


def _digest(image: dict[str, Any]) -> str:
    return mock_image_digest(image["inputs"])


def image_problems(before: Plan, after: Plan) -> list[str]:
    """What `pulumi up` from `before` to `after` would do wrong with the images."""
    problems = []
    old, new = _images(before), _images(after)
    for plan in (before, after):
        versions = [_version(image) for image in _images(plan).values()]
        if len(versions) != len(set(versions)):
            problems.append(f"{plan.stack}: more than one image resource per version {versions}")
    for address in old.keys() & new.keys():
        if old[address]["inputs"] != new[address]["inputs"]:
            problems.append(f"{address}: changed inputs rebuild and push its tag again")
    new_versions = {_version(image): address for address, image in new.items()}
    for address in old.keys() - new.keys():
        version = _version(old[address])
        if version in new_versions:
            problems.append(f"{address}: version {version} moved to {new_versions[version]}")
        running = _digest(old[address]) in _running_digests(before) | _running_digests(after)
        if running and not before.options[address]["retainOnDelete"]:
            problems.append(f"{address}: deleting it deletes the manifest a track runs")
    return problems


def test_each_step_of_the_rollout_keeps_every_live_image(
    rollout: list[tuple[str, Plan]],
) -> None:
    # Rolling back after the promotion: stable on the previous Bento again, as at first.
    steps = [*rollout, ("rolled back", rollout[0][1])]
    problems = [
        f"{first} -> {second}: {problem}"
        for (first, before), (second, after) in itertools.pairwise(steps)
        for problem in image_problems(before, after)
    ]
    assert problems == []


def test_one_image_resource_per_bento_version_across_the_rollout(
    rollout: list[tuple[str, Plan]],
) -> None:
    addresses: dict[str, set[str]] = {}
    for _, plan in rollout:
        for address, image in _images(plan).items():
            addresses.setdefault(_version(image), set()).add(address)
    assert set(addresses) == {"0.1.0", "0.2.0"}
    assert all(len(found) == 1 for found in addresses.values()), addresses


def test_no_image_is_built_on_preview(plan: Plan) -> None:
    for image in plan.of_type(IMAGE):
        assert image["inputs"]["buildOnPreview"] is False, image["name"]


def test_teardown_needs_no_docker_engine_and_removes_no_manifest(plan: Plan) -> None:
    """Deleting an image resource calls the provider's Delete (Docker client, registry delete
    by digest) unless the resource is retained; the registry's cleanup policy retires versions."""
    for image in plan.of_type(IMAGE):
        assert plan.options[Plan.address(image)]["retainOnDelete"] is True


def _named_by_track(plan: Plan, version: str, track: str) -> Plan:
    """A copy of `plan` whose image of `version` is named after a track and not retained."""
    renamed = Plan(copy.deepcopy(dict(plan)))
    renamed.options = copy.deepcopy(plan.options)
    for resource in renamed.of_type(IMAGE):
        if _version(resource) == version:
            options = renamed.options.pop(Plan.address(resource))
            resource["name"] = f"moderation-{track}"
            renamed.options[Plan.address(resource)] = {**options, "retainOnDelete": False}
    return renamed


def test_planted_image_per_track_is_caught(rollout: list[tuple[str, Plan]]) -> None:
    """Planted: the candidate's image resource named after its track, as before this fix."""
    (_, shadow), (_, canary) = rollout[1], rollout[2]
    problems = image_problems(
        _named_by_track(shadow, "0.2.0", "shadow"), _named_by_track(canary, "0.2.0", "canary")
    )
    assert any("moved to" in problem for problem in problems), problems
    assert any("deletes the manifest a track runs" in problem for problem in problems), problems
