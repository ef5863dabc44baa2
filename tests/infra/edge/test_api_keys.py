"""API key hashes: secret config -> Secret Manager -> a file in every pod; never plaintext."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from infra.config import secret_settings
from tests.infra.plans import ROOT, STACKS, Plan

SECRET = "gcp:secretmanager/secret:Secret"
SECRET_VERSION = "gcp:secretmanager/secretVersion:SecretVersion"
PROVIDER_CLASS = "kubernetes:secrets-store.csi.x-k8s.io/v1:SecretProviderClass"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
# A key hash, but not an image digest (`...@sha256:<hex>`).
KEY_HASH = re.compile(r"(?<!@)sha256:[0-9a-f]{64}")


def _placeholder_hashes() -> list[str]:
    (hashes,) = secret_settings().values()
    return hashes


def _pod(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["inputs"]["spec"]["template"]


def _secret_ids(plan: Plan) -> dict[str, str]:
    """Each region's copy of the key hashes, by region: `projects/<project>/secrets/<id>`."""
    project = plan.outputs["registryUrl"].split("/")[1]
    return {
        region: f"projects/{project}/secrets/{secret['inputs']['secretId']}"
        for region, secret in plan.each_region(SECRET).items()
    }


def test_hashes_are_a_secret_manager_version_no_one_can_read_in_the_plan(plan: Plan) -> None:
    secret_ids = _secret_ids(plan)
    assert secret_ids[plan.regions[0]] == plan.outputs["apiKeysSecret"]
    assert len(set(secret_ids.values())) == len(secret_ids), "one secret per region"
    secrets = plan.each_region(SECRET)
    for region, version in plan.each_region(SECRET_VERSION).items():
        assert version["inputs"]["secret"] == secret_ids[region]
        assert version["inputs"]["secretData"] == "[secret]", region
        assert version["inputs"]["deletionPolicy"] == "DISABLE", region
        assert secrets[region]["inputs"]["replication"] == {"auto": {}}, region
    text = json.dumps(plan)
    for key_hash in _placeholder_hashes():
        assert key_hash.removeprefix("sha256:") not in text
    assert not KEY_HASH.search(text)


def test_only_the_workload_identity_may_read_the_hashes(plan: Plan) -> None:
    """Each region's copy is readable by that region's pods' account and by no one else."""
    accounts = {
        region: account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        for region, account in plan.kubernetes_object_in_each_region(
            "ServiceAccount", "moderation", "moderation"
        ).items()
    }
    assert accounts[plan.regions[0]] == plan.outputs["workloadServiceAccount"]
    secret_ids = _secret_ids(plan)
    grants = plan.of_type("gcp:secretmanager/secretIamMember:SecretIamMember")
    for region, secret_id in secret_ids.items():
        (grant,) = [g["inputs"] for g in grants if g["inputs"]["secretId"] == secret_id]
        assert grant["role"] == "roles/secretmanager.secretAccessor", region
        assert grant["member"] == f"serviceAccount:{accounts[region]}", region
    assert len(grants) == len(secret_ids)


def test_every_pod_mounts_the_pinned_version_as_the_hashes_file(plan: Plan) -> None:
    """In each region, from that region's own copy."""
    secret_ids = _secret_ids(plan)
    deployments = plan.in_each_region(DEPLOYMENT)
    for region, resource in plan.each_region(PROVIDER_CLASS).items():
        _check_pods_mount(
            resource["inputs"],
            f"{secret_ids[region]}/versions/1",  # as the plan's mocks number it
            [
                d
                for d in deployments[region]
                if "moderation.dev/track" in d["inputs"]["metadata"]["labels"]
            ],
        )


def _check_pods_mount(
    provider_class: dict[str, Any], version_name: str, deployments: list[dict[str, Any]]
) -> None:
    (secret,) = yaml.safe_load(provider_class["spec"]["parameters"]["secrets"])
    assert provider_class["spec"]["provider"] == "gke"
    assert secret["resourceName"] == version_name
    assert deployments
    for deployment in deployments:
        pod = _pod(deployment)
        (volume,) = [v for v in pod["spec"]["volumes"] if "csi" in v]
        assert volume["csi"] == {
            "driver": "secrets-store-gke.csi.k8s.io",
            "readOnly": True,
            "volumeAttributes": {"secretProviderClass": provider_class["metadata"]["name"]},
        }
        (container,) = pod["spec"]["containers"]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
        env = {item["name"]: item.get("value") for item in container["env"]}
        assert mount["readOnly"] is True
        assert env["MODERATION_API_KEY_HASHES_FILE"] == f"{mount['mountPath']}/{secret['path']}"
        assert "MODERATION_AUTH_DISABLED" not in env
        # A new key set is a new version: stamped on the pod template, it rolls the pods.
        assert pod["metadata"]["annotations"]["moderation.dev/api-keys-revision"] == version_name


def test_cluster_runs_the_secret_manager_add_on(plan: Plan) -> None:
    for region, cluster in plan.each_region("gcp:container/cluster:Cluster").items():
        assert cluster["inputs"]["secretManagerConfig"] == {"enabled": True}, region


def test_committed_stack_files_hold_no_api_key_material() -> None:
    for stack in STACKS:
        text = (ROOT / f"Pulumi.{stack}.yaml").read_text()
        config = yaml.safe_load(text)["config"]
        for key in secret_settings():
            assert set(config.get(key, {"secure": None})) == {"secure"}, f"{stack}: {key}"
        assert not KEY_HASH.search(text), stack
