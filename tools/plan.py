"""Run the Pulumi program under mocks and write what it would declare: `build/plan/<stack>.json`.

    python -m tools.plan --stack dev|prod [--stack-file PATH] [--output PATH] [--options PATH]
                         [--project-dir DIR]

No Pulumi CLI, plugin or cloud is involved: `pulumi.runtime.set_mocks` (the documented unit-test
hook) stands in for the engine and the providers. The mocks only invent what the cloud would
compute (ids, a cluster endpoint, service-account e-mails); every input is the program's own.
Output: `{"project", "stack", "resources": [{"type", "name", "inputs", "dependencies"}], "outputs"}`
with camelCase inputs as the engine receives them, integral numbers as ints and secrets as
"[secret]". `dependencies` lists, as `<type>::<name>`, every resource the engine would make this one
wait for: its explicit `depends_on`, the resources whose Outputs flow into its inputs, and its
provider (the SDK reports all of these to the engine with the registration).

The program runs as the engine runs it: `main` of `Pulumi.yaml` as a script, with that folder as
the working directory (pulumi/pulumi `pkg/engine/project.go`), so relative paths in its inputs
mean what they mean under `pulumi up`. Where a provider checks a path before anything is built,
the mock checks it the same way (the docker-build provider: `docker_build_check_failures`).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import runpy
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from infra.config import ConfigError, parse_stack_config, secret_settings
from infra.placeholders import describe, find_placeholders

ROOT = Path(__file__).resolve().parent.parent
REDACTED = "[secret]"
GET_PROJECT = "gcp:organizations/getProject:getProject"
GET_CLIENT_CONFIG = "gcp:organizations/getClientConfig:getClientConfig"
MOCK_PROJECT_NUMBER = "123456789012"
MOCK_CLUSTER_ENDPOINT = "203.0.113.10"
MOCK_EDGE_IP = "203.0.113.20"
CLUSTER_TYPE = "gcp:container/cluster:Cluster"
GATEWAY_TYPE = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
GLOBAL_ADDRESS_TYPE = "gcp:compute/globalAddress:GlobalAddress"
MOCK_CA_CERTIFICATE = base64.b64encode(b"mock cluster CA certificate").decode()


def normalise(value: Any) -> Any:
    """JSON-ready inputs: secrets hidden, integral floats back to ints (the wire has no ints)."""
    if rpc.is_rpc_secret(value):
        return REDACTED
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(key): normalise(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [normalise(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def mock_image_digest(inputs: Mapping[str, Any]) -> str:
    """What the mock registry answers for a pushed image: a digest of what was built (the
    image's plan inputs), so that each build gets its own and a test can tell which one."""
    built = json.dumps(inputs, sort_keys=True).encode()
    return f"sha256:{hashlib.sha256(built).hexdigest()}"


def docker_build_check_failures(inputs: Mapping[str, Any]) -> list[str]:
    """What the docker-build provider's Check refuses before any build, preview included
    (pulumi-docker-build `provider/internal/context.go` and `dockerfile.go`): a local context
    that is not a directory, or a Dockerfile that cannot be opened, each made absolute with
    `filepath.Abs`, i.e. against the engine's working directory."""
    context = inputs.get("context", {}).get("location", ".")
    dockerfile = inputs.get("dockerfile", {}).get("location") or os.path.join(context, "Dockerfile")
    failures = []
    if not os.path.isdir(os.path.abspath(context)):
        failures.append(f"context.location {context!r}: not a valid directory or URL")
    if not os.path.isfile(os.path.abspath(dockerfile)):
        failures.append(f"dockerfile.location {dockerfile!r}: no such file")
    return [f"{failure} (from {os.getcwd()})" for failure in failures]


class PlanMocks(pulumi.runtime.Mocks):
    """Records every registered resource; answers with its inputs plus cloud-computed fields."""

    def __init__(self, project: str) -> None:
        self.project = project
        self.resources: list[dict[str, Any]] = []
        # What the real providers' Check would refuse, preview included: `pulumi up` stops there.
        self.refusals: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if args.typ == "docker-build:index:Image" and (
            failures := docker_build_check_failures(args.inputs)
        ):
            self.refusals.append(f"docker-build:index:Image {args.name}: " + "; ".join(failures))
        self.resources.append(
            {"type": args.typ, "name": args.name, "inputs": normalise(args.inputs)}
        )
        state = {"name": args.name, **args.inputs, **self._computed(args)}
        return state.get("id", f"{args.name}-id"), state

    def _computed(self, args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
        inputs = args.inputs
        match args.typ:
            case "gcp:container/cluster:Cluster":
                return {
                    "endpoint": MOCK_CLUSTER_ENDPOINT,
                    "masterAuth": {
                        **inputs.get("masterAuth", {}),
                        "clusterCaCertificate": MOCK_CA_CERTIFICATE,
                    },
                }
            case "gcp:serviceaccount/account:Account":
                email = f"{inputs['accountId']}@{self.project}.iam.gserviceaccount.com"
                return {
                    "email": email,
                    "member": f"serviceAccount:{email}",
                    "name": f"projects/{self.project}/serviceAccounts/{email}",
                }
            case "gcp:artifactregistry/repository:Repository":
                return {"name": inputs["repositoryId"]}
            case "gcp:compute/globalAddress:GlobalAddress":
                return {"address": MOCK_EDGE_IP}
            case "gcp:certificatemanager/dnsAuthorization:DnsAuthorization":
                challenge = {"type": "CNAME", "data": "0.mock.authorize.certificatemanager.goog."}
                return {
                    "dnsResourceRecords": [
                        {**challenge, "name": f"_acme-challenge.{inputs['domain']}."}
                    ]
                }
            case "gcp:secretmanager/secret:Secret":
                secret = f"projects/{self.project}/secrets/{inputs['secretId']}"
                return {"id": secret, "name": secret}
            case "gcp:secretmanager/secretVersion:SecretVersion":
                return {"name": f"{inputs['secret']}/versions/1", "version": "1"}
            case "docker-build:index:Image":
                return {"digest": mock_image_digest(normalise(inputs))}
            case "gcp:logging/projectSink:ProjectSink":
                # A unique writer identity per sink (unique_writer_identity=True).
                sink_agent = f"{inputs['name']}@gcp-sa-logging.iam.gserviceaccount.com"
                return {"writerIdentity": f"serviceAccount:{sink_agent}"}
            case _:
                return {}

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        """Data-source invokes; an unknown one fails here rather than yield an empty answer."""
        if args.token == GET_PROJECT:
            return {"projectId": self.project, "number": MOCK_PROJECT_NUMBER}
        if args.token == GET_CLIENT_CONFIG:
            return {"project": self.project, "accessToken": "mock-access-token"}
        raise NotImplementedError(f"the plan has no mock for invoke {args.token}: add one here")


def address(urn: str) -> str:
    """`<type>::<name>` of a URN (`urn:pulumi:<stack>::<project>::<parent$>type::<name>`)."""
    qualified_type, name = urn.split("::")[2:4]
    return f"{qualified_type.split('$')[-1]}::{name}"


class PlanMonitor(MockMonitor):
    """The mock engine, also recording what each registration says it waits for."""

    def __init__(self, mocks: PlanMocks) -> None:
        super().__init__(mocks)
        self.refusals = mocks.refusals
        self.dependencies: dict[str, list[str]] = {}
        # Resource options the engine acts on but a plan's inputs cannot show.
        self.options: dict[str, dict[str, Any]] = {}

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        # A provider reference is "<urn>::<id>"; the resource waits for that provider too.
        waits_for = {*request.dependencies}
        if request.provider:
            waits_for.add(request.provider.rsplit("::", 1)[0])
        key = address(response.urn)
        self.dependencies[key] = sorted(map(address, waits_for))
        self.options[key] = {
            "protect": request.protect,
            "ignoreChanges": list(request.ignoreChanges),
            "deleteBeforeReplace": request.deleteBeforeReplace,
            "retainOnDelete": request.retainOnDelete,
            "customTimeouts": {
                "create": request.customTimeouts.create,
                "update": request.customTimeouts.update,
                "delete": request.customTimeouts.delete,
            },
        }
        return response


def read_stack_file(path: Path) -> dict[str, Any]:
    """The `config:` mapping of a stack file; `secure:` values become placeholders."""
    document = yaml.safe_load(path.read_text()) or {}
    config = document.get("config") or {}
    return {
        key: REDACTED if isinstance(value, Mapping) and set(value) == {"secure"} else value
        for key, value in config.items()
    }


def _engine_form(value: Any) -> str:
    """The engine passes every config value as text; objects as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


async def _resolve_outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    resolved = {}
    for name, value in outputs.items():
        output = pulumi.Output.from_input(value)
        is_secret = await output.is_secret()
        resolved[name] = REDACTED if is_secret else normalise(await output.future())
    return resolved


def build_plan(
    stack: str, stack_file: Path | None = None, project_dir: Path = ROOT
) -> dict[str, Any]:
    """Run the program for `stack` under mocks; returns the plan document."""
    return run_program(stack, stack_file, project_dir)[0]


def run_program(
    stack: str, stack_file: Path | None = None, project_dir: Path = ROOT
) -> tuple[dict[str, Any], PlanMonitor]:
    """The plan document and the mock engine that saw every registration (options included).
    `project_dir` holds `Pulumi.yaml`; the program is its `main` folder, run from there."""
    settings = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())
    project, program_dir = settings["name"], project_dir / settings.get("main", ".")
    # Secrets cannot be decrypted here: secret settings run with their documented examples.
    placeholders = secret_settings()
    config = {**read_stack_file(stack_file or ROOT / f"Pulumi.{stack}.yaml"), **placeholders}
    stack_config = parse_stack_config(config)  # fail before anything runs
    pulumi.runtime.set_all_config(
        {key: _engine_form(value) for key, value in config.items()},
        [key for key, value in config.items() if value == REDACTED or key in placeholders],
    )
    mocks = PlanMocks(stack_config.gcp.project)
    monitor = PlanMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
    root = pulumi.runtime.get_root_resource()
    # Exactly how the Pulumi CLI runs `main: infra/`: the directory's __main__.py as a script,
    # with that directory as the working directory.
    with contextlib.chdir(program_dir):
        _sync_await(run_pulumi_func(lambda: runpy.run_path(str(program_dir), run_name="__main__")))
    outputs = _sync_await(_resolve_outputs(root.outputs))
    addresses = Counter(f"{r['type']}::{r['name']}" for r in mocks.resources)
    if duplicates := [key for key, count in addresses.items() if count > 1]:
        raise ValueError(f"resources declared twice (type::name must be unique): {duplicates}")
    for resource in mocks.resources:
        resource["dependencies"] = monitor.dependencies[f"{resource['type']}::{resource['name']}"]
    # Registration order depends on thread timing; a sorted plan diffs cleanly between runs.
    resources = sorted(mocks.resources, key=lambda r: (r["type"], r["name"]))
    plan = {"project": project, "stack": stack, "resources": resources, "outputs": outputs}
    return plan, monitor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="stack name, e.g. dev or prod")
    parser.add_argument("--stack-file", type=Path, help="default: Pulumi.<stack>.yaml")
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=ROOT,
        help="the folder of Pulumi.yaml (and of build/images), default: this checkout",
    )
    parser.add_argument("--output", type=Path, help="default: build/plan/<stack>.json")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also print a count per resource type"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 1, no plan written) where `pulumi up` would refuse, e.g. an image whose "
        "exported Bento context is missing; without it, a warning",
    )
    parser.add_argument(
        "--options",
        type=Path,
        help="also write each resource's engine options (protect, ignoreChanges, ...) here",
    )
    args = parser.parse_args(argv)
    stack_file = args.stack_file or ROOT / f"Pulumi.{args.stack}.yaml"
    try:
        plan, monitor = run_program(args.stack, stack_file, args.project_dir.resolve())
    except ConfigError as error:
        print(f"{args.stack}: {error}", file=sys.stderr)
        return 2
    if monitor.refusals and args.strict:
        print("\n".join(monitor.refusals), file=sys.stderr)
        return 1
    output = args.output or ROOT / "build" / "plan" / f"{args.stack}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(plan, indent=2, sort_keys=True) + "\n")
    if args.options is not None:
        args.options.write_text(json.dumps(monitor.options, indent=2, sort_keys=True) + "\n")
    counts = Counter(resource["type"] for resource in plan["resources"])
    if args.verbose:
        width = max(map(len, counts))
        for resource_type, count in sorted(counts.items()):
            print(f"{resource_type:<{width}}  {count}")
    print(f"{sum(counts.values())} resources of {len(counts)} types -> {output}")
    print(serving_summary(plan))
    warn_about_placeholders(stack_file)
    warn_about_refusals(monitor.refusals)
    return 0


def serving_summary(plan: Mapping[str, Any]) -> str:
    """Where the stack serves from: its clusters, and the Gateway and address in front of them."""
    clusters = [r["inputs"] for r in plan["resources"] if r["type"] == CLUSTER_TYPE]
    kinds = {"regional" if c["location"].count("-") == 1 else "zonal" for c in clusters}
    gateways = [
        r["inputs"]["spec"]["gatewayClassName"]
        for r in plan["resources"]
        if r["type"] == GATEWAY_TYPE
    ]
    addresses = sum(r["type"] == GLOBAL_ADDRESS_TYPE for r in plan["resources"])
    return (
        f"serving: {len(clusters)} {'/'.join(sorted(kinds))} cluster(s) "
        f"({', '.join(c['location'] for c in clusters)}) behind {len(gateways)} Gateway(s) "
        f"({', '.join(gateways)}) on {addresses} global address(es)"
    )


def warn_about_refusals(refusals: list[str]) -> None:
    """A plan is still written; the real engine would stop at each of these (docs/deploy.md)."""
    if refusals:
        sys.stdout.flush()
        print(
            f"warning: `pulumi preview` / `pulumi up` would refuse {len(refusals)} resource(s) "
            "that plan here: export each release's Bento first (`make bento`, then set its tag "
            "in the stack's moderation:release):\n  " + "\n  ".join(refusals),
            file=sys.stderr,
        )


def warn_about_placeholders(stack_file: Path) -> None:
    """The committed placeholders plan fine here; a real deploy refuses them (infra/config.py)."""
    found = find_placeholders(read_stack_file(stack_file))
    if found:
        sys.stdout.flush()  # after the summary, also when both go to one pipe
        print(
            f"warning: {len(found)} placeholder value(s) in {stack_file.name}: fine for this "
            "plan, but a real `pulumi preview` / `pulumi up` refuses to run until each is "
            "replaced (docs/deploy.md):\n  " + describe(found),
            file=sys.stderr,
        )


if __name__ == "__main__":
    sys.exit(main())
