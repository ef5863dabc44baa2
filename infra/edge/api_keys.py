"""API key hashes: held in Secret Manager, mounted into the pods as a file.

The stack's secret config holds `sha256:<hex>` hashes, never the keys; the program writes
them, one per line, as a Secret Manager secret version. Pods read that version through the
GKE Secret Manager add-on (a CSI volume described by a `SecretProviderClass`), so the hashes
never become a Kubernetes Secret: Secret Manager stays the only copy, every read is an IAM
decision on the workload's own service account and shows up in its audit log.

The class pins one secret version and exposes `pod_annotations`: a new version (a key added
or revoked) changes the pod template, so the Deployment rolls its pods one by one with no
unavailable replica. Several hashes are active at once, which is what makes a rotation
downtime-free: add the new key, move clients, then revoke the old one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

CSI_PROVIDER_CLASS_API = "secrets-store.csi.x-k8s.io/v1"
GKE_CSI_DRIVER = "secrets-store-gke.csi.k8s.io"
MOUNT_DIRECTORY = "/var/run/secrets/moderation"
HASHES_FILE_NAME = "api-key-hashes"
HASHES_FILE_ENV = "MODERATION_API_KEY_HASHES_FILE"
VOLUME_NAME = "api-key-hashes"
VERSION_ANNOTATION = "moderation.dev/api-key-hashes-version"


@dataclass(frozen=True)
class ApiKeysArgs:
    """`key_hashes` is secret config; `accessor_member` is the workload's IAM principal."""

    secret_id: str
    key_hashes: pulumi.Input[Sequence[str]]
    accessor_member: pulumi.Input[str]
    namespace: pulumi.Input[str]
    labels: Mapping[str, str]


class ApiKeys(pulumi.ComponentResource):
    """Secret, its current version, read access for the workload, and the CSI provider class.

    Pass the cluster's Kubernetes provider in `opts.providers`.
    """

    secret_name: pulumi.Output[str]
    secret_version: pulumi.Output[str]
    provider_class_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: ApiKeysArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("moderation:edge:ApiKeys", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        secret = gcp.secretmanager.Secret(
            f"{name}-secret",
            secret_id=args.secret_id,
            labels=dict(args.labels),
            replication=gcp.secretmanager.SecretReplicationArgs(
                auto=gcp.secretmanager.SecretReplicationAutoArgs()
            ),
            opts=child,
        )
        version = gcp.secretmanager.SecretVersion(
            f"{name}-version",
            secret=secret.id,
            secret_data=pulumi.Output.secret(args.key_hashes).apply(
                lambda hashes: "".join(f"{line}\n" for line in hashes)
            ),
            # A superseded version is disabled, not destroyed: revocation is immediate and the
            # previous set stays available to re-enable.
            deletion_policy="DISABLE",
            opts=child,
        )
        gcp.secretmanager.SecretIamMember(
            f"{name}-accessor",
            secret_id=secret.id,
            role="roles/secretmanager.secretAccessor",
            member=args.accessor_member,
            opts=child,
        )
        provider_class_name = "api-key-hashes"
        k8s.apiextensions.CustomResource(
            f"{name}-provider-class",
            api_version=CSI_PROVIDER_CLASS_API,
            kind="SecretProviderClass",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=provider_class_name, namespace=args.namespace, labels=dict(args.labels)
            ),
            spec={
                "provider": "gke",
                "parameters": {
                    "secrets": version.name.apply(
                        lambda resource: (
                            f'- resourceName: "{resource}"\n  path: "{HASHES_FILE_NAME}"\n'
                        )
                    )
                },
            },
            opts=child,
        )

        self.secret_name = secret.name
        self.secret_version = version.name
        self.provider_class_name = pulumi.Output.from_input(provider_class_name)
        self.register_outputs(
            {
                "secret_name": self.secret_name,
                "secret_version": self.secret_version,
                "provider_class_name": self.provider_class_name,
            }
        )

    @property
    def pod_annotations(self) -> dict[str, pulumi.Output[str]]:
        """Changes with every new secret version, so the Deployment rolls its pods."""
        return {VERSION_ANNOTATION: self.secret_version}

    def pod_volume(self) -> k8s.core.v1.VolumeArgs:
        """The CSI volume that materialises the hashes file inside the pod."""
        return k8s.core.v1.VolumeArgs(
            name=VOLUME_NAME,
            csi=k8s.core.v1.CSIVolumeSourceArgs(
                driver=GKE_CSI_DRIVER,
                read_only=True,
                volume_attributes={"secretProviderClass": self.provider_class_name},
            ),
        )

    @staticmethod
    def container_mount() -> k8s.core.v1.VolumeMountArgs:
        return k8s.core.v1.VolumeMountArgs(
            name=VOLUME_NAME, mount_path=MOUNT_DIRECTORY, read_only=True
        )

    @staticmethod
    def container_env() -> k8s.core.v1.EnvVarArgs:
        return k8s.core.v1.EnvVarArgs(
            name=HASHES_FILE_ENV, value=f"{MOUNT_DIRECTORY}/{HASHES_FILE_NAME}"
        )
