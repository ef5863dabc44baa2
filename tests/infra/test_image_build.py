"""One `pulumi up` from a fresh project: the program builds the Bento's image from the context
`make bento` exports, pushes it to the stack's registry, and deploys it by the digest the push
returns; a prebuilt image by digest (from CI) is deployed as given instead."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from infra.image import DOCKERFILE, image_context, image_resource_name
from tests.infra.edge.test_config import CANARY
from tests.infra.plans import Plan, stack_config
from tools.build_bento import IMAGE_CONTEXTS, REPO_ROOT
from tools.plan import mock_image_digest

IMAGE = "docker-build:index:Image"
REPOSITORY = "gcp:artifactregistry/repository:Repository::moderation"


def _track_deployment(plan: Plan, track: str) -> dict[str, Any]:
    return plan.one("kubernetes:apps/v1:Deployment", f"moderation-{track}")


def _image_of(deployment: dict[str, Any]) -> str:
    return deployment["inputs"]["spec"]["template"]["spec"]["containers"][0]["image"]


def test_dev_builds_the_bento_named_in_config_and_pushes_it(plans: dict[str, Plan]) -> None:
    dev = plans["dev"]
    release = stack_config("dev")["moderation:release"]["stable"]
    assert "image" not in release
    image = dev.one(
        IMAGE, image_resource_name(stack_config("dev")["moderation:release"]["stable"]["bento"])
    )
    context = str(image_context(release["bento"]))
    assert image["inputs"]["context"] == {"location": context}
    assert image["inputs"]["dockerfile"] == {"location": f"{context}/{DOCKERFILE}"}
    assert image["inputs"]["push"] is True
    assert image["inputs"]["platforms"] == ["linux/amd64"]
    version = release["bento"].split(":")[1]
    assert image["inputs"]["tags"] == [f"{dev.outputs['registryUrl']}/moderation:{version}"]
    assert REPOSITORY in image["dependencies"]  # pushed once the repository exists


def test_the_deployment_runs_the_built_image_by_its_digest(plans: dict[str, Plan]) -> None:
    dev = plans["dev"]
    image = dev.one(
        IMAGE, image_resource_name(stack_config("dev")["moderation:release"]["stable"]["bento"])
    )
    deployment = _track_deployment(dev, "stable")
    digest = mock_image_digest(image["inputs"])  # what the push of this image returned
    assert _image_of(deployment) == f"{dev.outputs['registryUrl']}/moderation@{digest}"
    assert Plan.address(image) in deployment["dependencies"]
    assert dev.outputs["image"] == _image_of(deployment)


def test_a_prebuilt_image_is_deployed_as_given_and_nothing_is_built(
    plans: dict[str, Plan],
) -> None:
    prod = plans["prod"]
    release = stack_config("prod")["moderation:release"]["stable"]
    assert prod.of_type(IMAGE) == []
    assert _image_of(_track_deployment(prod, "stable")) == release["image"]


@pytest.fixture(scope="module")
def canary_built(plan_variant: Callable[..., Plan]) -> Plan:
    def add_canary(config: dict[str, Any]) -> None:
        config["moderation:release"]["canary"] = {
            key: value for key, value in CANARY.items() if key != "image"
        }

    return plan_variant("dev", add_canary)


def test_each_track_builds_its_own_bento(canary_built: Plan) -> None:
    images = {i["name"]: i for i in canary_built.of_type(IMAGE)}
    canary_image = image_resource_name(CANARY["bento"])
    assert set(images) == {"moderation-0.1.0", canary_image}
    assert images[canary_image]["inputs"]["context"]["location"] == str(
        image_context(CANARY["bento"])
    )
    canary = _image_of(_track_deployment(canary_built, "canary"))
    stable = _image_of(_track_deployment(canary_built, "stable"))
    assert re.fullmatch(r".+/moderation@sha256:[0-9a-f]{64}", canary)
    assert canary != stable


def test_make_bento_exports_the_context_where_the_program_builds_it() -> None:
    """Both sides name one place: `build/images/<name>-<version>` under the project, which the
    program names from `infra/`, the folder the engine runs it from."""
    program_dir = REPO_ROOT / "infra"
    context = (program_dir / image_context("moderation:0.1.0")).resolve()
    assert context == IMAGE_CONTEXTS / "moderation-0.1.0"
