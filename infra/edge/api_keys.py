"""API key hashes: held in Secret Manager, mounted into the pods as a file.

The stack's secret config holds `sha256:<hex>` hashes, never the keys; the program writes
them, one per line, as a Secret Manager secret version. Pods read that version through the
GKE Secret Manager add-on (a CSI volume described by a `SecretProviderClass`), so the hashes
never become a Kubernetes Secret: Secret Manager stays the only copy, every read is an IAM
decision on the workload's own service account and shows up in its audit log.

The provider class pins one secret version, which `file.revision` stamps on the pod template:
a new version (a key added or revoked) makes each Deployment roll its pods one by one, with no
unavailable replica, and the new pods mount the new file. Several hashes are active at once,
which is what makes a rotation downtime-free: add the new key, move clients, then revoke the old.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from infra.workload import ApiKeysFile

CSI_PROVIDER_CLASS_API = "secrets-store.csi.x-k8s.io/v1"
GKE_CSI_DRIVER = "secrets-store-gke.csi.k8s.io"
HASHES_FILE_NAME = "api-key-hashes"
PROVIDER_CLASS_NAME = "api-key-hashes"


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
            # A superseded version is disabled, not destroyed: no new pod can mount a revoked set,
            # and the previous set stays in Secret Manager to re-enable after a mistake.
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
        k8s.apiextensions.CustomResource(
            f"{name}-provider-class",
            api_version=CSI_PROVIDER_CLASS_API,
            kind="SecretProviderClass",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=PROVIDER_CLASS_NAME, namespace=args.namespace, labels=dict(args.labels)
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
        self.provider_class_name = pulumi.Output.from_input(PROVIDER_CLASS_NAME)
        self.register_outputs(
            {
                "secret_name": self.secret_name,
                "secret_version": self.secret_version,
                "provider_class_name": self.provider_class_name,
            }
        )

    @property
    def file(self) -> ApiKeysFile:
        """What a release track mounts: the CSI volume, and the version to roll the pods on."""
        return ApiKeysFile(
            csi=k8s.core.v1.CSIVolumeSourceArgs(
                driver=GKE_CSI_DRIVER,
                read_only=True,
                volume_attributes={"secretProviderClass": self.provider_class_name},
            ),
            file_name=HASHES_FILE_NAME,
            revision=self.secret_version,
        )
