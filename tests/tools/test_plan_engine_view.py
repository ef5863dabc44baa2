"""The engine's view: `pulumi up` runs the program with `main` of `Pulumi.yaml` as its working
directory (pulumi/pulumi `pkg/engine/project.go`; pulumi/pulumi#20305: "the working directory
changes into the specified directory"), and the docker-build provider makes an image's context and
Dockerfile absolute against that directory with `filepath.Abs` before anything is built
(pulumi-docker-build `provider/internal/context.go`, `dockerfile.go`). The plan tool runs the
program the same way and its mock refuses an image the provider would refuse."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.infra.plans import IMAGE_CONTEXTS as PLANNED_CONTEXTS
from tests.infra.plans import ROOT, Plan, plan_project
from tools.build_bento import IMAGE_CONTEXTS, REPO_ROOT
from tools.plan import docker_build_check_failures

IMAGE = "docker-build:index:Image"
MAIN = ROOT / yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["main"]


def test_plans_export_contexts_where_make_bento_does() -> None:
    assert REPO_ROOT / PLANNED_CONTEXTS == IMAGE_CONTEXTS


def test_each_image_is_built_from_where_make_bento_exports_it(plans: dict[str, Plan]) -> None:
    """Resolved as the provider resolves it (from `main`), the context is `make bento`'s folder."""
    images = plans["dev"].of_type(IMAGE)
    assert images
    for image in images:
        inputs = image["inputs"]
        context = (MAIN / inputs["context"]["location"]).resolve()
        assert context.parent == IMAGE_CONTEXTS, inputs["context"]
        dockerfile = (MAIN / inputs["dockerfile"]["location"]).resolve()
        assert dockerfile == context / "env" / "docker" / "Dockerfile"


def test_the_mock_refuses_what_the_provider_refuses(tmp_path: Path) -> None:
    """Planted: a context named relative to the project root, checked from `main`."""
    project = plan_project(tmp_path, {"moderation:1.0.0"})
    from_root = {
        "context": {"location": "build/images/moderation-1.0.0"},
        "dockerfile": {"location": "build/images/moderation-1.0.0/env/docker/Dockerfile"},
    }
    with contextlib.chdir(project):
        assert docker_build_check_failures(from_root) == []
    with contextlib.chdir(project / MAIN.name):
        failures = docker_build_check_failures(from_root)
    assert len(failures) == 2
    assert "not a valid directory or URL" in failures[0]


@pytest.mark.parametrize("strict", [True, False])
def test_a_plan_without_the_exported_context_says_pulumi_up_would_refuse(
    tmp_path: Path, strict: bool
) -> None:
    """`make plan` in a checkout where `make bento` has not run warns where `pulumi up` would
    stop (the plan is still written, as with placeholders); `--strict` (the tests' plans) stops."""
    (tmp_path / "project").mkdir()
    project = plan_project(tmp_path / "project", set())
    command = [sys.executable, "-m", "tools.plan", "--stack", "dev", "--project-dir", str(project)]
    result = subprocess.run(
        [*command, "--output", str(tmp_path / "dev.json"), *(["--strict"] if strict else [])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "not a valid directory or URL" in result.stderr
    assert result.returncode == (1 if strict else 0), result.stderr
    assert (tmp_path / "dev.json").exists() is not strict
    if not strict:
        assert "would refuse" in result.stderr
