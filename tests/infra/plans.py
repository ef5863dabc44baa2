"""Plans of the Pulumi program, built once per test session by the real plan tool (`tools.plan`),
and the helpers to read them: shared by tests/infra, tests/tools and tests/policy (tests/conftest.py
registers the fixtures once for the session).

Each plan runs in its own process, exactly as `make plan STACK=<stack>` does, so no Pulumi runtime
state leaks between stacks or into other tests. It runs in a project folder of its own, laid out as
`pulumi up` finds it after `make bento` (`plan_project`): the plan tool runs the program from there
as the engine does, and its docker-build mock checks each image's context where the provider looks.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import ConfigError, parse_stack_config, secret_settings

ROOT = Path(__file__).resolve().parents[2]
CRD_SCHEMAS = Path(__file__).parent / "schemas" / "crds"
"""JSON Schemas of the custom resources (Gateway API, GKE policies, Managed Prometheus)."""
# Where `make bento` exports image build contexts, under the project (tools/build_bento.py).
IMAGE_CONTEXTS = Path("build/images")
STACKS = ("dev", "prod")
# API groups the Kubernetes API server itself serves (no CRD needed): "" / "core" is the core
# group, as an object's apiVersion and as a Pulumi type token spell it.
KUBERNETES_API_GROUPS = frozenset(
    {
        "",
        "core",
        "apps",
        "autoscaling",
        "batch",
        "policy",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "apiregistration.k8s.io",
    }
)


SUBNETWORK = "gcp:compute/subnetwork:Subnetwork"
KUBERNETES_PROVIDER = "pulumi:providers:kubernetes::"


def _names_region(name: str, region: str) -> bool:
    """Whether a logical name carries a region (`moderation-us-central1-nodes`,
    `moderation-stable-us-central1`)."""
    return re.search(rf"-{re.escape(region)}(?=-|$)", name) is not None


def without_region(name: str, region: str) -> str:
    """A logical name as the stack's own region names it: without `-<region>`."""
    return re.sub(rf"-{re.escape(region)}(?=-|$)", "", name, count=1)


class Plan(dict):
    """A plan document (`{"project", "stack", "resources", "outputs"}`) with lookup helpers;
    `options` holds each resource's engine options (`protect`, `ignoreChanges`, ...) by address."""

    options: dict[str, dict[str, Any]]

    @staticmethod
    def address(resource: dict[str, Any]) -> str:
        """`<type>::<name>`, as `dependencies` name a resource."""
        return f"{resource['type']}::{resource['name']}"

    def waits_for(self, resource: dict[str, Any]) -> set[str]:
        """Every resource `resource` waits for, directly or through others (its dependencies'
        dependencies, and so on): what the engine has finished before it starts this one."""
        direct = {self.address(r): r["dependencies"] for r in self["resources"]}
        seen: set[str] = set()
        pending = list(resource["dependencies"])
        while pending:
            current = pending.pop()
            if current not in seen:
                seen.add(current)
                pending.extend(direct[current])
        return seen

    @property
    def stack(self) -> str:
        return self["stack"]

    @property
    def outputs(self) -> dict[str, Any]:
        return self["outputs"]

    def of_type(self, resource_type: str) -> list[dict[str, Any]]:
        return [r for r in self["resources"] if r["type"] == resource_type]

    def one(self, resource_type: str, name: str | None = None) -> dict[str, Any]:
        """The single resource of a type (and logical name); fails loudly otherwise."""
        found = [r for r in self.of_type(resource_type) if name is None or r["name"] == name]
        assert len(found) == 1, f"{self.stack}: {len(found)} x {resource_type} {name or ''}"
        return found[0]

    def kubernetes_object(
        self, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any]:
        """The one Kubernetes object with this kind and metadata name (and namespace)."""
        found = [
            obj
            for obj in self.kubernetes_objects()
            if obj["kind"] == kind
            and obj["metadata"]["name"] == name
            and namespace in (None, obj["metadata"].get("namespace"))
        ]
        assert len(found) == 1, f"{self.stack}: {len(found)} x {kind} {namespace or ''}/{name}"
        return found[0]

    @property
    def regions(self) -> list[str]:
        """Every serving region (one subnet each), the stack's own first: its names carry no
        region, while every other region's names end with or contain `-<region>`."""
        subnets = {s["inputs"]["region"]: s["name"] for s in self.of_type(SUBNETWORK)}
        assert subnets, f"{self.stack}: no subnet"
        return sorted(subnets, key=lambda region: _names_region(subnets[region], region))

    def region_of(self, resource: dict[str, Any]) -> str:
        """The serving region a resource belongs to: a Kubernetes object's is its cluster's (the
        provider it is applied through), any other's is the region its name carries, if any."""
        providers = [d for d in resource["dependencies"] if d.startswith(KUBERNETES_PROVIDER)]
        name = providers[0].split("::", 1)[1] if providers else resource["name"]
        named = [region for region in self.regions if _names_region(name, region)]
        assert len(named) <= 1, f"{self.stack}: {name} names regions {named}"
        return named[0] if named else self.regions[0]

    def each_region(self, resource_type: str, name: str | None = None) -> dict[str, dict[str, Any]]:
        """The one resource of a type (and one-region logical name, `name` before the region
        is added) in each serving region, by region; fails loudly unless every region has
        exactly one."""
        found: dict[str, list[dict[str, Any]]] = {region: [] for region in self.regions}
        for resource in self.of_type(resource_type):
            region = self.region_of(resource)
            if name is None or without_region(resource["name"], region) == name:
                found[region].append(resource)
        counts = {region: len(resources) for region, resources in found.items()}
        assert set(counts.values()) == {1}, f"{self.stack}: {resource_type} {name or ''} {counts}"
        return {region: resources[0] for region, resources in found.items()}

    def in_each_region(self, resource_type: str) -> dict[str, list[dict[str, Any]]]:
        """Every resource of a type, by serving region; fails loudly if a region has none."""
        found: dict[str, list[dict[str, Any]]] = {region: [] for region in self.regions}
        for resource in self.of_type(resource_type):
            found[self.region_of(resource)].append(resource)
        empty = [region for region, resources in found.items() if not resources]
        assert not empty, f"{self.stack}: no {resource_type} in {empty}"
        return found

    def kubernetes_object_in_each_region(
        self, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, dict[str, Any]]:
        """The one Kubernetes object with this kind and metadata name (and namespace) in each
        region's cluster, by region; fails loudly unless every cluster has exactly one."""
        found: dict[str, list[dict[str, Any]]] = {region: [] for region in self.regions}
        for resource in self["resources"]:
            obj = resource["inputs"]
            if (
                resource["type"].startswith("kubernetes:")
                and obj.get("kind") == kind
                and obj["metadata"]["name"] == name
                and namespace in (None, obj["metadata"].get("namespace"))
            ):
                found[self.region_of(resource)].append(obj)
        counts = {region: len(objects) for region, objects in found.items()}
        assert set(counts.values()) == {1}, f"{self.stack}: {kind} {namespace}/{name} {counts}"
        return {region: objects[0] for region, objects in found.items()}

    def kubernetes_objects(self) -> Iterator[dict[str, Any]]:
        """Every Kubernetes object the program declares, as the API server would receive it."""
        for resource in self["resources"]:
            if resource["type"].startswith("kubernetes:") and "kind" in resource["inputs"]:
                yield resource["inputs"]


def built_bentos(config: dict[str, Any]) -> set[str]:
    """The Bentos `pulumi up` builds for a stack config: each release without a prebuilt image."""
    releases = config.get("moderation:release", {})
    return {
        release["bento"]
        for release in releases.values()
        if isinstance(release, dict) and "bento" in release and "image" not in release
    }


def plan_project(directory: Path, bentos: set[str]) -> Path:
    """A project folder as `pulumi up` finds it after `make bento` for each of `bentos`:
    `Pulumi.yaml`, the program, and each Bento's exported image build context where `make bento`
    writes it (a stand-in context: only its layout matters to the provider's checks)."""
    shutil.copy(ROOT / "Pulumi.yaml", directory)
    main = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["main"]
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / main, directory / main, ignore=ignore, dirs_exist_ok=True)
    for bento in bentos:
        name, version = bento.split(":", 1)
        context = directory / IMAGE_CONTEXTS / f"{name}-{version}"
        dockerfile = context / "env" / "docker" / "Dockerfile"  # where BentoML writes it
        dockerfile.parent.mkdir(parents=True, exist_ok=True)
        dockerfile.write_text("FROM scratch\n")
    return directory


def _start_plan(
    stack: str, output: Path, stack_file: Path | None, project: Path
) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tools.plan", "--stack", stack, "--strict"]
    command += ["--output", str(output)]
    command += ["--options", str(output.with_suffix(".options.json"))]
    command += ["--project-dir", str(project)]
    if stack_file is not None:
        command += ["--stack-file", str(stack_file)]
    return subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _finish_plan(process: subprocess.Popen[str], output: Path) -> Plan:
    log, _ = process.communicate(timeout=300)
    assert process.returncode == 0, log
    plan = Plan(json.loads(output.read_text()))
    plan.options = json.loads(output.with_suffix(".options.json").read_text())
    plan.log = log  # what `make plan` printed
    return plan


@pytest.fixture(scope="session")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Plan]:
    """Plans of the committed stack files; both stacks are planned in parallel."""
    directory = tmp_path_factory.mktemp("plan")
    bentos = set().union(*(built_bentos(stack_config(stack)) for stack in STACKS))
    project = plan_project(tmp_path_factory.mktemp("project"), bentos)
    running = {
        stack: _start_plan(stack, directory / f"{stack}.json", None, project) for stack in STACKS
    }
    return {
        stack: _finish_plan(process, directory / f"{stack}.json")
        for stack, process in running.items()
    }


@pytest.fixture(params=STACKS)
def plan(request: pytest.FixtureRequest, plans: dict[str, Plan]) -> Plan:
    """Each test taking `plan` runs once per stack."""
    return plans[request.param]


def stack_config(stack: str) -> dict[str, Any]:
    """The committed `config:` mapping of a stack file, plus the secret settings a real stack
    holds encrypted (`pulumi config set --secret`), at their documented example values."""
    config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {**config, **secret_settings()}


def region_networks(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each serving region's `network` section of a stack config, by region: the stack's own
    (`gcp:region`) and each of `moderation:fleet.regions`."""
    networks = {config["gcp:region"]: config["moderation:network"]}
    for region in config.get("moderation:fleet", {}).get("regions", []):
        networks[region["nodeZones"][0].rsplit("-", 1)[0]] = region["network"]
    return networks


def config_error(stack: str, change: Callable[[dict[str, Any]], None]) -> str:
    """The ConfigError message of `stack`'s config after `change`."""
    config = copy.deepcopy(stack_config(stack))
    change(config)
    with pytest.raises(ConfigError) as raised:
        parse_stack_config(config)
    return str(raised.value)


@pytest.fixture(scope="session")
def plan_variant(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Plan]:
    """Plan a stack whose config is edited by `change(config)` first (e.g. add a GPU pool)."""

    def build(stack: str, change: Callable[[dict[str, Any]], None]) -> Plan:
        directory = tmp_path_factory.mktemp(f"variant-{stack}")
        (directory / "project").mkdir()
        config = stack_config(stack)
        change(config)
        stack_file = directory / f"Pulumi.{stack}.yaml"
        stack_file.write_text(yaml.safe_dump({"config": config}))
        output = directory / "plan.json"
        project = plan_project(directory / "project", built_bentos(config))
        return _finish_plan(_start_plan(stack, output, stack_file, project), output)

    return build
