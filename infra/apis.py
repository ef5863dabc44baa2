"""The Google APIs the stack calls, enabled by the program itself, so that a fresh project needs
only the two that enabling takes (Service Usage, and Resource Manager to read the project).

Every GCP resource of the stack goes through `provider`, which waits until each API is on:
a resource never calls an API that is still off. APIs stay on when the stack is destroyed
(`disable_on_destroy=False`): other workloads in the project may use them, and turning one off
would break them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.registry import CONTAINER_SCANNING_API

REQUIRED_APIS: tuple[str, ...] = (
    "artifactregistry.googleapis.com",  # the Bento images
    CONTAINER_SCANNING_API,  # their vulnerability scans (Artifact Analysis)
    "bigquery.googleapis.com",  # the log sink's dataset
    "billingbudgets.googleapis.com",  # the budget (also its calls' quota project)
    "binaryauthorization.googleapis.com",  # image admission
    "certificatemanager.googleapis.com",  # the managed certificate and its map
    "cloudkms.googleapis.com",  # the secrets encryption key
    "compute.googleapis.com",  # network, addresses, Cloud Armor, SSL policy
    "container.googleapis.com",  # the cluster and node pools
    # Image streaming: GKE "Use Image streaming": "Enable the Container File System API".
    "containerfilesystem.googleapis.com",
    "dns.googleapis.com",  # records, where a managed zone is configured
    "iam.googleapis.com",  # service accounts
    # Workload Identity Federation for GKE: "Enable the IAM Service Account Credentials API".
    "iamcredentials.googleapis.com",
    "logging.googleapis.com",  # sinks, exclusions, log-based metrics
    "monitoring.googleapis.com",  # alerts, SLOs, uptime check, dashboard, Managed Prometheus
    "pubsub.googleapis.com",  # the optional log forwarder
    "secretmanager.googleapis.com",  # the API key hashes and the GKE Secret Manager add-on
    "storage.googleapis.com",  # the log archive
)
# GKE "Enable multi-cluster Gateways", requirements: only stacks serving several regions.
FLEET_APIS: tuple[str, ...] = (
    "gkehub.googleapis.com",  # fleet memberships and features
    "multiclusterservicediscovery.googleapis.com",  # ServiceExport / ServiceImport
    "multiclusteringress.googleapis.com",  # the multi-cluster Gateway controller
    "trafficdirector.googleapis.com",  # used by the multi-cluster Gateway controller
)


@dataclass(frozen=True)
class ProjectApisArgs:
    project: str
    fleet: bool = False
    """Also the fleet's APIs (`FLEET_APIS`)."""


class ProjectApis(pulumi.ComponentResource):
    """Each required API, on; `provider` is the Google provider that waits for all of them."""

    provider: gcp.Provider
    enabled: list[gcp.projects.Service]

    def __init__(
        self, name: str, args: ProjectApisArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("moderation:infra:ProjectApis", name, None, opts)
        self.enabled = [
            gcp.projects.Service(
                f"{name}-{api.split('.', 1)[0]}",
                project=args.project,
                service=api,
                disable_on_destroy=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for api in (*REQUIRED_APIS, *(FLEET_APIS if args.fleet else ()))
        ]
        self.provider = gcp.Provider(
            name,
            project=args.project,
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.enabled),
        )
        self.register_outputs({})
