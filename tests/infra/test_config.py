"""Stack config validation: bad settings fail before any resource exists, naming the key."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pulumi
import pytest
import yaml

from infra.config import ConfigError, StackConfig, load_stack_config, parse_stack_config
from infra.placeholders import find_placeholders
from tests.infra.plans import ROOT, STACKS, stack_config


def _with(stack: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    config = copy.deepcopy(stack_config(stack))
    change(config)
    return config


def _error(config: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as raised:
        parse_stack_config(config)
    return str(raised.value)


@pytest.mark.parametrize("stack", STACKS)
def test_committed_stack_files_are_valid(stack: str) -> None:
    config = parse_stack_config(stack_config(stack))
    assert config.environment == stack
    assert config.labels == {
        "environment": stack,
        "app": "moderation",
        "cost-center": config.cost_center,
    }


def test_config_is_frozen() -> None:
    config = parse_stack_config(stack_config("dev"))
    with pytest.raises(ValueError, match="frozen"):
        config.environment = "prod"  # type: ignore[misc]


def test_missing_project_names_the_gcp_key() -> None:
    message = _error(_with("dev", lambda c: c.pop("gcp:project")))
    assert "gcp:project: is required but missing" in message


def test_missing_section_names_the_moderation_key() -> None:
    message = _error(_with("prod", lambda c: c.pop("moderation:cluster")))
    assert "moderation:cluster: is required but missing" in message


def test_bad_cidr_is_rejected_with_its_key() -> None:
    message = _error(
        _with("dev", lambda c: c["moderation:network"].update(podsCidr="10.20.0.0/33"))
    )
    assert "moderation:network.podsCidr" in message
    assert "10.20.0.0/33" in message


def test_cidr_with_host_bits_is_rejected() -> None:
    message = _error(
        _with("dev", lambda c: c["moderation:network"].update(subnetCidr="10.10.0.1/20"))
    )
    assert "moderation:network.subnetCidr" in message


def test_overlapping_ranges_are_rejected() -> None:
    message = _error(
        _with("dev", lambda c: c["moderation:network"].update(servicesCidr="10.20.16.0/20"))
    )
    assert "moderation:network" in message
    assert "overlaps" in message


def test_min_replicas_above_max_is_rejected() -> None:
    def change(config: dict[str, Any]) -> None:
        config["moderation:workload"]["autoscaling"].update(minReplicas=5, maxReplicas=2)

    message = _error(_with("prod", change))
    assert "moderation:workload.autoscaling" in message
    assert "minReplicas 5 is above maxReplicas 2" in message


def test_min_nodes_above_max_is_rejected() -> None:
    message = _error(
        _with("dev", lambda c: c["moderation:nodePools"]["model"].update(minNodes=4, maxNodes=3))
    )
    assert "moderation:nodePools.model" in message


def test_unknown_machine_family_is_rejected() -> None:
    message = _error(
        _with("dev", lambda c: c["moderation:nodePools"]["model"].update(machineType="x9-mega-4"))
    )
    assert "moderation:nodePools.model" in message
    assert "unknown machine family 'x9'" in message


@pytest.mark.parametrize(
    ("pool", "machine_type", "message"),
    [
        ("model", "n4-standard-8", "unknown machine family 'n4'"),
        ("model", "c4-standard-8", "unknown machine family 'c4'"),
        ("system", "c2-standard-4", "unknown machine family 'c2'"),
        ("model", "n2-custom-4-8192", "is not a predefined n2 type"),
        ("model", "t2d-highmem-8", "is not a predefined t2d type"),
    ],
)
def test_a_machine_type_outside_the_machine_table_is_rejected_by_key(
    pool: str, machine_type: str, message: str
) -> None:
    """Without a shape, the pods-fit-their-pool check has nothing to check and the cost tool
    nothing to price (infra/machines.py is the one table): refused, not let through."""

    def change(config: dict[str, Any]) -> None:
        config["moderation:nodePools"][pool]["machineType"] = machine_type

    error = _error(_with("dev", change))
    assert f"moderation:nodePools.{pool}: machineType '{machine_type}': " in error
    assert message in error


def test_gpu_pool_needs_a_gpu_machine_and_accelerator() -> None:
    def change(config: dict[str, Any]) -> None:
        config["moderation:nodePools"]["gpu"] = {
            "machineType": "n2-standard-8",
            "minNodes": 0,
            "maxNodes": 1,
            "acceleratorType": "nvidia-l4",
        }

    assert "cannot attach GPUs" in _error(_with("dev", change))


def test_a_gpu_the_machine_family_cannot_attach_is_rejected() -> None:
    def change(config: dict[str, Any]) -> None:
        config["moderation:nodePools"]["gpu"] = {
            "machineType": "n1-standard-8",
            "minNodes": 0,
            "maxNodes": 1,
            "acceleratorType": "nvidia-l4",
        }

    error = _error(_with("dev", change))
    assert "moderation:nodePools.gpu" in error
    assert "cannot attach nvidia-l4; its family attaches nvidia-tesla-t4" in error


def test_workload_on_gpu_needs_a_gpu_pool() -> None:
    message = _error(_with("dev", lambda c: c["moderation:workload"].update(nodePool="gpu")))
    assert "moderation:workload.nodePool is 'gpu' but nodePools.gpu is not set" in message


def test_open_master_network_is_rejected_in_prod() -> None:
    def change(config: dict[str, Any]) -> None:
        config["moderation:cluster"]["masterAuthorizedNetworks"] = [
            {"name": "anywhere", "cidr": "0.0.0.0/0"}
        ]

    assert "moderation:cluster.masterAuthorizedNetworks must not hold 0.0.0.0/0" in _error(
        _with("prod", change)
    )


def test_prod_needs_master_networks_and_deletion_protection() -> None:
    no_networks = _with(
        "prod", lambda c: c["moderation:cluster"].update(masterAuthorizedNetworks=[])
    )
    assert "moderation:cluster.masterAuthorizedNetworks must not be empty in prod" in _error(
        no_networks
    )
    unprotected = _with("prod", lambda c: c["moderation:cluster"].update(deletionProtection=False))
    assert "moderation:cluster.deletionProtection must be true in prod" in _error(unprotected)


def test_image_must_be_pinned_by_digest() -> None:
    def change(config: dict[str, Any]) -> None:
        image = "europe-west1-docker.pkg.dev/p/moderation/moderation:latest"
        config["moderation:release"]["stable"]["image"] = image

    assert "moderation:release.stable.image" in _error(_with("dev", change))


def test_canary_weight_is_a_percentage() -> None:
    def change(config: dict[str, Any]) -> None:
        stable = config["moderation:release"]["stable"]
        config["moderation:release"]["canary"] = {**stable, "weight": 150}

    assert "moderation:release.canary.weight" in _error(_with("dev", change))


def test_unknown_key_is_reported_as_a_typo() -> None:
    message = _error(_with("dev", lambda c: c["moderation:cluster"].update(relaseChannel="RAPID")))
    assert "moderation:cluster.relaseChannel: is not a known setting" in message


def test_node_zones_must_be_in_the_region() -> None:
    message = _error(
        _with("dev", lambda c: c["moderation:cluster"].update(nodeZones=["us-central1-a"]))
    )
    assert "moderation:cluster.nodeZones ['us-central1-a'] are not in gcp:region" in message


def test_every_problem_is_reported_at_once() -> None:
    def change(config: dict[str, Any]) -> None:
        config.pop("gcp:project")
        config["moderation:network"]["podsCidr"] = "nonsense"

    message = _error(_with("dev", change))
    assert "gcp:project" in message
    assert "moderation:network.podsCidr" in message


def _deployable(stack: str) -> dict[str, Any]:
    """The committed stack with every placeholder replaced by a value someone could really own."""
    config = copy.deepcopy(stack_config(stack))
    for index, network in enumerate(config["moderation:cluster"]["masterAuthorizedNetworks"]):
        network["cidr"] = f"100.64.{index}.0/24"
    stable = config["moderation:release"]["stable"]
    if "image" in stable:  # prebuilt (prod); dev builds its image from the Bento
        stable["image"] = stable["image"].replace("sha256:" + "0" * 64, "sha256:" + "1" * 64)
    edge = config["moderation:edge"]
    edge["domains"] = ["api.moderation.acme.dev"]
    if "dnsManagedZone" in edge:
        edge["dnsManagedZone"] = "moderation-acme-dev"
    for channel in config["moderation:observability"]["notificationChannels"]:
        channel["emailAddress"] = f"{channel['name']}@acme.dev"
    config["moderation:budget"]["billingAccount"] = "01A2B3-C4D5E6-F7A8B9"
    config["moderation:apiKeyHashes"] = ["sha256:" + "c" * 64]
    return config


def _load_as_the_engine_passes(raw: dict[str, Any]) -> StackConfig:
    """The engine hands objects over as JSON text; no mocks are set here, as under `pulumi up`."""
    engine_form = {key: v if isinstance(v, str) else json.dumps(v) for key, v in raw.items()}
    pulumi.runtime.set_all_config(engine_form)
    try:
        return load_stack_config()
    finally:
        pulumi.runtime.set_all_config({})


@pytest.mark.parametrize("stack", STACKS)
def test_loads_what_the_pulumi_engine_passes(stack: str) -> None:
    raw = _deployable(stack)
    loaded = _load_as_the_engine_passes(raw)
    assert loaded == parse_stack_config(raw)
    assert isinstance(loaded, StackConfig)


@pytest.mark.parametrize("stack", STACKS)
def test_a_real_deploy_refuses_every_committed_placeholder_by_key(stack: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _load_as_the_engine_passes(stack_config(stack))
    message = str(raised.value)
    expected = [
        "moderation:cluster.masterAuthorizedNetworks[0].cidr: '203.0.113.0/24'",
        "moderation:edge.domains[0]:",
        "moderation:observability.notificationChannels[0].emailAddress:",
        "moderation:budget.billingAccount: '000000-000000-000000'",
        "moderation:apiKeyHashes[0]:",  # the plan's example hash, used for real
    ]
    if stack == "prod":  # dev names no image: it builds its own from the Bento
        expected += [
            "moderation:release.stable.image:",
            "moderation:cluster.masterAuthorizedNetworks[1].cidr: '198.51.100.0/24'",
            "moderation:edge.dnsManagedZone: 'moderation-example-com'",
            "moderation:observability.notificationChannels[1].emailAddress:",
        ]
    for key in expected:
        assert key in message
    assert message.count("\n  ") == len(expected)  # one line per placeholder, nothing else


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("moderation:edge", {"domains": ["example.org"]}),
        ("moderation:network", {"natIp": "192.0.2.7"}),
        ("moderation:cluster", {"cidr": "2001:db8:1::/48"}),
        ("moderation:edge", {"dnsManagedZone": "example-org"}),
    ],
)
def test_placeholder_forms_are_recognised(key: str, value: dict[str, Any]) -> None:
    assert len(find_placeholders({key: value})) == 1


def test_real_looking_values_are_not_placeholders() -> None:
    values = {
        "moderation:edge": {"domains": ["api.examples.io", "counterexample.com"]},
        "moderation:cluster": {"cidr": "203.0.114.0/24", "other": "198.51.101.1/32"},
        "moderation:release": {"image": "r/m@sha256:" + "0" * 63 + "1"},
    }
    assert find_placeholders(values) == []


def test_mocks_and_the_real_engine_are_told_apart() -> None:
    """Mocks set (the plan tool, the tests) vs not (the engine connects its own monitor)."""
    script = (
        "import pulumi\n"
        "from infra.placeholders import under_mocks\n"
        "print(under_mocks())\n"
        "class M(pulumi.runtime.Mocks):\n"
        "    def new_resource(self, args): return args.name, {}\n"
        "    def call(self, args): return {}\n"
        "pulumi.runtime.set_mocks(M())\n"
        "print(under_mocks())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "True"]


def test_plan_tool_exits_with_the_config_error(tmp_path: Any) -> None:
    bad = _with("prod", lambda c: c["moderation:cluster"].update(deletionProtection=False))
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump({"config": bad}))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.plan",
            "--stack",
            "prod",
            "--stack-file",
            str(stack_file),
            "--output",
            str(tmp_path / "plan.json"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "moderation:cluster.deletionProtection must be true in prod" in result.stderr
    assert not (tmp_path / "plan.json").exists()


def test_a_per_key_rate_limit_without_any_burst_is_rejected_with_its_key() -> None:
    def no_burst(config: dict[str, Any]) -> None:
        config["moderation:workload"]["keyRateLimit"] = {"requestsPerMinute": 60, "burst": 0}

    assert "moderation:workload.keyRateLimit.burst" in _error(_with("dev", no_burst))


@pytest.mark.parametrize("form", ["json", "comma"])
def test_api_key_hashes_take_a_json_or_a_comma_list(form: str) -> None:
    """The server's MODERATION_API_KEY_HASHES format pasted into the Pulumi config works too."""
    hashes = ["sha256:" + "a" * 64, "sha256:" + "b" * 64]
    value = json.dumps(hashes) if form == "json" else ", ".join(hashes)
    config = parse_stack_config({**stack_config("dev"), "moderation:apiKeyHashes": value})
    assert config.api_key_hashes.get_secret_value() == tuple(hashes)


def _serving(machine_type: str, *validated: str, backend: str = "transformers") -> Any:
    def change(config: dict[str, Any]) -> None:
        config["moderation:nodePools"]["model"]["machineType"] = machine_type
        config["moderation:workload"]["model"] = {"backend": backend, "validated": list(validated)}

    return change


def test_a_bf16_only_model_on_a_family_without_native_bf16_is_refused_naming_the_key() -> None:
    # n2 runs on Cascade Lake or Ice Lake: avx512_vnni, no avx512_bf16 (infra/machines.py).
    error = _error(_with("prod", _serving("n2-standard-8", "bf16")))
    assert "moderation:workload.model.validated [bf16]: nodePools.model.machineType" in error
    assert "'n2-standard-8' runs none of these natively" in error
    assert "avx512_bf16" in error


@pytest.mark.parametrize(
    ("machine_type", "validated"),
    [
        ("c3-standard-8", ["bf16"]),  # Sapphire Rapids: AMX
        ("n2-standard-8", ["int8"]),  # VNNI
        ("n2d-standard-8", ["int8"]),  # AVX2 integer path
        ("n2-standard-8", ["fp32", "bf16"]),  # fp32 validated too: no fallback
    ],
)
def test_a_family_with_the_feature_of_a_validated_setting_is_accepted(
    machine_type: str, validated: list[str]
) -> None:
    config = parse_stack_config(_with("prod", _serving(machine_type, *validated)))
    assert [str(s) for s in config.workload.model.validated] == validated


def _gpu_pool(accelerator: str, machine_type: str, *validated: str) -> Any:
    def change(config: dict[str, Any]) -> None:
        config["moderation:nodePools"]["gpu"] = {
            "machineType": machine_type,
            "minNodes": 0,
            "maxNodes": 4,
            "acceleratorType": accelerator,
        }
        config["moderation:workload"]["nodePool"] = "gpu"
        config["moderation:workload"]["model"] = {
            "backend": "transformers",
            "validated": list(validated),
        }

    return change


def test_a_gpu_pool_needs_the_compute_capability_of_a_validated_gpu_setting() -> None:
    # An L4 (8.9) runs bf16; a T4 (7.5) does not (bf16 needs 8.0).
    parse_stack_config(_with("dev", _gpu_pool("nvidia-l4", "g2-standard-4", "gpu:bf16")))
    error = _error(_with("dev", _gpu_pool("nvidia-tesla-t4", "n1-standard-8", "gpu:bf16")))
    assert "moderation:workload.model.validated [gpu:bf16]: nodePools.gpu.machineType" in error
    assert "compute capability 8.0" in error
    parse_stack_config(_with("dev", _gpu_pool("nvidia-tesla-t4", "n1-standard-8", "gpu:fp16")))


def test_gpu_time_sharing_lets_more_pods_share_a_nodes_gpu() -> None:
    def shared(clients: int | None) -> Any:
        def change(config: dict[str, Any]) -> None:
            _gpu_pool("nvidia-l4", "g2-standard-16", "fp32")(config)
            pool = config["moderation:nodePools"]["gpu"]
            pool["maxNodes"] = 2
            if clients:
                pool["sharing"] = {"maxSharedClientsPerGpu": clients}

        return change

    # dev: maxReplicas 3 + 1 surge pod = 4 pods on 2 one-L4 nodes only when shared by 2.
    assert "nodePools.gpu.maxNodes 2 x 1 pod(s)" in _error(_with("dev", shared(None)))
    config = parse_stack_config(_with("dev", shared(2)))
    assert config.node_pools.gpu is not None
    assert config.node_pools.gpu.pods_per_node_limit == 2
