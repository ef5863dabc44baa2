"""API key hashes: secret config -> Secret Manager -> a file in every pod; never plaintext."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from infra.config import secret_settings
from tests.infra.plans import ROOT, STACKS, Plan

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


def test_hashes_are_a_secret_manager_version_no_one_can_read_in_the_plan(plan: Plan) -> None:
    version = plan.one(SECRET_VERSION)["inputs"]
    secret = plan.one("gcp:secretmanager/secret:Secret")["inputs"]
    assert version["secretData"] == "[secret]"
    assert version["deletionPolicy"] == "DISABLE"
    assert secret["replication"] == {"auto": {}}
    text = json.dumps(plan)
    for key_hash in _placeholder_hashes():
        assert key_hash.removeprefix("sha256:") not in text
    assert not KEY_HASH.search(text)


def test_only_the_workload_identity_may_read_the_hashes(plan: Plan) -> None:
    grant = plan.one("gcp:secretmanager/secretIamMember:SecretIamMember")["inputs"]
    assert grant["role"] == "roles/secretmanager.secretAccessor"
    assert grant["member"] == f"serviceAccount:{plan.outputs['workloadServiceAccount']}"
    assert grant["secretId"] == plan.outputs["apiKeysSecret"]


def test_every_pod_mounts_the_pinned_version_as_the_hashes_file(plan: Plan) -> None:
    version_name = f"{plan.outputs['apiKeysSecret']}/versions/1"  # as the plan's mocks number it
    provider_class = plan.one(PROVIDER_CLASS)["inputs"]
    (secret,) = yaml.safe_load(provider_class["spec"]["parameters"]["secrets"])
    assert provider_class["spec"]["provider"] == "gke"
    assert secret["resourceName"] == version_name
    deployments = [
        d
        for d in plan.of_type(DEPLOYMENT)
        if "moderation.dev/track" in d["inputs"]["metadata"]["labels"]
    ]
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
    cluster = plan.one("gcp:container/cluster:Cluster")["inputs"]
    assert cluster["secretManagerConfig"] == {"enabled": True}


def test_committed_stack_files_hold_no_api_key_material() -> None:
    for stack in STACKS:
        text = (ROOT / f"Pulumi.{stack}.yaml").read_text()
        config = yaml.safe_load(text)["config"]
        for key in secret_settings():
            assert set(config.get(key, {"secure": None})) == {"secure"}, f"{stack}: {key}"
        assert not KEY_HASH.search(text), stack
