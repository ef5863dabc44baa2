"""The project's fleet, for serving from several regions behind one multi-cluster Gateway.

GKE "Enable multi-cluster Gateways": every cluster is a fleet member; the multi-cluster services
feature (`multiclusterservicediscovery`) exports Services across them and the multi-cluster
ingress feature (`multiclusteringress`) runs the Gateway controller against one config cluster
(a regional one, as Google recommends: the stack's own region). Google lists two grants: the
Gateway controller's service agent gets `roles/container.admin` on the project, and the MCS
importer (Workload Identity `gke-mcs/gke-mcs-importer`) gets `roles/compute.networkViewer`.

Both features are one per project ("fleet"), not per stack: a second stack that declares them
gets 409 ALREADY_EXISTS from GKE Hub, and destroying them would cut every other stack's
multi-cluster traffic. So a stack either declares them (`fleet.features: create`), kept on
destroy (`retain_on_delete`), or adopts the ones already on (`existing`) and declares nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
import pulumiverse_time as time

from infra.cluster import Cluster
from infra.config import FleetConfig
from infra.workload import ModelDeployment

MCS_API_GROUP = "net.gke.io"
SERVICES_FEATURE = "multiclusterservicediscovery"
INGRESS_FEATURE = "multiclusteringress"
FEATURE_LOCATION = "global"
GATEWAY_CONTROLLER_ROLE = "roles/container.admin"
MCS_IMPORTER_ROLE = "roles/compute.networkViewer"
MCS_IMPORTER = "gke-mcs/gke-mcs-importer"
"""The MCS importer's Kubernetes service account (namespace/name)."""


@dataclass(frozen=True)
class FleetArgs:
    config: FleetConfig
    project: str
    clusters: Mapping[str, Cluster]
    """Region -> its cluster; the first one is the config cluster."""
    labels: Mapping[str, str]


class Fleet(pulumi.ComponentResource):
    """One membership per cluster; the two features (or none, when adopted) and their grants."""

    memberships: dict[str, gcp.gkehub.Membership]
    services_ready: list[pulumi.Resource]
    """What `ServiceExport`s wait for: the MCS feature installs their CRD in every member."""
    ingress_ready: list[pulumi.Resource]
    """What the multi-cluster Gateway waits for: the MCI feature and the controller's grant."""

    def __init__(
        self, name: str, args: FleetArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("moderation:infra:Fleet", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.memberships = {
            region: gcp.gkehub.Membership(
                f"{name}-{region}",
                project=args.project,
                membership_id=f"{name}-{region}",
                location=region,
                endpoint=gcp.gkehub.MembershipEndpointArgs(
                    gke_cluster=gcp.gkehub.MembershipEndpointGkeClusterArgs(
                        resource_link=pulumi.Output.concat(
                            "//container.googleapis.com/", cluster.cluster.id
                        )
                    )
                ),
                labels=dict(args.labels),
                opts=child,
            )
            for region, cluster in args.clusters.items()
        }
        members: Sequence[pulumi.Resource] = list(self.memberships.values())
        config_membership = next(iter(self.memberships.values()))
        project_number = gcp.organizations.get_project_output(project_id=args.project).number
        grants = [
            gcp.projects.IAMMember(
                f"{name}-gateway-controller",
                project=args.project,
                role=GATEWAY_CONTROLLER_ROLE,
                member=project_number.apply(
                    lambda number: (
                        f"serviceAccount:service-{number}"
                        "@gcp-sa-multiclusteringress.iam.gserviceaccount.com"
                    )
                ),
                opts=child,
            ),
            gcp.projects.IAMMember(
                f"{name}-mcs-importer",
                project=args.project,
                role=MCS_IMPORTER_ROLE,
                member=f"serviceAccount:{args.project}.svc.id.goog[{MCS_IMPORTER}]",
                # `<project>.svc.id.goog` exists once a Workload Identity cluster does: IAM
                # refuses a binding to it before ("Identity Pool does not exist").
                opts=child.merge(pulumi.ResourceOptions(depends_on=members)),
            ),
        ]
        if args.config.features == "create":
            # Kept on destroy: other stacks of the project may route through them.
            kept = child.merge(pulumi.ResourceOptions(retain_on_delete=True, depends_on=members))
            services: list[pulumi.Resource] = [
                gcp.gkehub.Feature(
                    f"{name}-{SERVICES_FEATURE}",
                    project=args.project,
                    name=SERVICES_FEATURE,
                    location=FEATURE_LOCATION,
                    labels=dict(args.labels),
                    opts=kept,
                )
            ]
            ingress: list[pulumi.Resource] = [
                gcp.gkehub.Feature(
                    f"{name}-{INGRESS_FEATURE}",
                    project=args.project,
                    name=INGRESS_FEATURE,
                    location=FEATURE_LOCATION,
                    labels=dict(args.labels),
                    spec=gcp.gkehub.FeatureSpecArgs(
                        multiclusteringress=gcp.gkehub.FeatureSpecMulticlusteringressArgs(
                            config_membership=config_membership.id
                        )
                    ),
                    opts=kept,
                )
            ]
        else:
            services, ingress = [], []
        self.services_ready = [*members, *services, grants[1]]
        self.ingress_ready = [*members, *ingress, grants[0]]
        self.register_outputs(
            {"memberships": {region: m.id for region, m in self.memberships.items()}}
        )


def service_export(
    name: str,
    deployment: ModelDeployment,
    namespace: pulumi.Input[str],
    labels: Mapping[str, str],
    fleet: Fleet,
    drain_seconds: int,
    opts: pulumi.ResourceOptions,
) -> k8s.apiextensions.CustomResource:
    """Export one track's Service to the fleet: MCS makes the `ServiceImport` of that name in
    every member. Its kind exists only once the MCS feature has installed its CRD ("no matches
    for kind ServiceExport" before), so it waits for the feature.

    A region removed from the stack is drained before its pods go: the engine deletes in reverse
    order, so the export goes first (the load balancer stops sending new requests there), then
    the drain wait (`destroy_duration`: the connection draining of the edge), then the pods."""
    drained = time.Sleep(
        f"{name}-drain",
        destroy_duration=f"{drain_seconds}s",
        opts=pulumi.ResourceOptions(depends_on=[deployment.deployment, deployment.service]),
    )
    return k8s.apiextensions.CustomResource(
        name,
        api_version=f"{MCS_API_GROUP}/v1",
        kind="ServiceExport",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=deployment.service_name, namespace=namespace, labels=dict(labels)
        ),
        opts=pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(depends_on=[*fleet.services_ready, drained])
        ),
    )
