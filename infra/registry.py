"""Artifact Registry repository holding the Bento images that the cluster runs (by digest).

Every image pushed is scanned for known vulnerabilities (Artifact Analysis, Container Scanning API),
and rescanned as new advisories appear while the image is in use.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.config import RegistryConfig

SECONDS_PER_DAY = 86400
# Artifact Analysis scans pushed images only where this API is on (infra/apis.py turns it on);
# the repository then inherits it.
CONTAINER_SCANNING_API = "containerscanning.googleapis.com"


@dataclass(frozen=True)
class RegistryArgs:
    config: RegistryConfig
    project: str
    region: str
    labels: dict[str, str]


class Registry(pulumi.ComponentResource):
    """Docker repository with immutable tags and cleanup policies (recent versions always kept)."""

    repository: gcp.artifactregistry.Repository
    url: str

    def __init__(
        self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("moderation:infra:Registry", name, None, opts)
        config = args.config
        # Known before the repository exists: image references and admission policy use it.
        self.url = f"{args.region}-docker.pkg.dev/{args.project}/{config.repository_id}"
        self.repository = gcp.artifactregistry.Repository(
            name,
            repository_id=config.repository_id,
            location=args.region,
            format="DOCKER",
            description="Bento images of the moderation service",
            docker_config=gcp.artifactregistry.RepositoryDockerConfigArgs(
                immutable_tags=config.immutable_tags
            ),
            vulnerability_scanning_config=gcp.artifactregistry.RepositoryVulnerabilityScanningConfigArgs(
                enablement_config="INHERITED"
            ),
            cleanup_policy_dry_run=False,
            cleanup_policies=[
                # KEEP wins over DELETE: the newest versions stay, whatever their age or tags.
                gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                    id="keep-recent-versions",
                    action="KEEP",
                    most_recent_versions=gcp.artifactregistry.RepositoryCleanupPolicyMostRecentVersionsArgs(
                        keep_count=config.keep_recent_versions
                    ),
                ),
                gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                    id="delete-old-untagged",
                    action="DELETE",
                    condition=gcp.artifactregistry.RepositoryCleanupPolicyConditionArgs(
                        tag_state="UNTAGGED",
                        older_than=f"{config.delete_untagged_after_days * SECONDS_PER_DAY}s",
                    ),
                ),
            ],
            labels=args.labels,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"url": self.url, "repositoryId": self.repository.id})

    def grant_read(
        self, name: str, member: pulumi.Input[str]
    ) -> gcp.artifactregistry.RepositoryIamMember:
        """Let `member` (e.g. the node service account) pull images from this repository only."""
        return gcp.artifactregistry.RepositoryIamMember(
            name,
            repository=self.repository.name,
            location=self.repository.location,
            role="roles/artifactregistry.reader",
            member=member,
            opts=pulumi.ResourceOptions(parent=self),
        )
