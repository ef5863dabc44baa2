"""Pulumi program: the moderation service on hardened GKE. Reads top to bottom:
config -> GCP components -> Kubernetes provider -> Kubernetes components -> stack outputs.

Run by the Pulumi CLI (`Pulumi.yaml` has `main: infra/`, so this file runs as a script) and by
`python -m tools.plan` under mocks, which runs it the same way.
"""

import math
import sys
from pathlib import Path

if not __package__:
    # Run as a script by the Pulumi CLI: make `infra` importable as a package, and drop infra/
    # itself from the path so that no module here can shadow a stdlib or third-party module.
    _infra_dir = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _infra_dir]
    sys.path.insert(0, str(_infra_dir.parent))

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from infra.apis import ProjectApis, ProjectApisArgs
from infra.cluster import Cluster, ClusterArgs
from infra.config import (
    APP,
    ClusterConfig,
    NetworkConfig,
    load_stack_config,
    regional_account_id,
)
from infra.edge.api_keys import ApiKeys, ApiKeysArgs
from infra.edge.armor import ArmorPolicy, ArmorPolicyArgs
from infra.edge.endpoint import PublicEndpoint, PublicEndpointArgs
from infra.edge.gateway import (
    EdgeGateway,
    EdgeGatewayArgs,
    MirrorBackend,
    MultiCluster,
    WeightedBackend,
)
from infra.fleet import Fleet, FleetArgs, service_export
from infra.image import BentoImage, BentoImageArgs, image_resource_name
from infra.network import Network, NetworkArgs
from infra.node_pools import NodePools, NodePoolsArgs
from infra.observability.alerts import Alerting, AlertingArgs
from infra.observability.budget import BudgetArgs, ProjectBudget
from infra.observability.dashboard import DashboardArgs, ServiceDashboard
from infra.observability.logs import LogPipeline, LogPipelineArgs
from infra.observability.metrics_adapter import (
    ADAPTER_IMAGE_PATTERN,
    MetricsAdapter,
    MetricsAdapterArgs,
)
from infra.registry import Registry, RegistryArgs
from infra.workload import ModelDeployment, ModelDeploymentArgs, Workload, WorkloadArgs

# --- config: read and validated once; nothing is declared if it is wrong --------------------------
config = load_stack_config()
project, region, labels = config.gcp.project, config.gcp.region, config.labels

# The HPA's serving metric (requests in flight) reaches it through the custom metrics adapter.
scales_on_serving_metric = config.workload.autoscaling.target_in_flight_requests is not None

# --- Google Cloud: every GCP resource goes through a provider that waits for the APIs it calls ---
apis = ProjectApis("moderation", ProjectApisArgs(project=project, fleet=config.fleet is not None))
on_gcp = pulumi.ResourceOptions(providers={"gcp": apis.provider})
registry = Registry(
    "moderation",
    RegistryArgs(config=config.registry, project=project, region=region, labels=labels),
    opts=on_gcp,
)
api_key_hashes = pulumi.Output.secret(config.api_key_hashes.get_secret_value())
releases = {"stable": config.release.stable, **config.release.candidates}
# Each release runs its prebuilt image, or the image this program builds from its Bento: one
# image per Bento version, whichever tracks run it, so a promotion (shadow -> canary -> stable)
# neither rebuilds it (tags are immutable) nor deletes it. Every region pulls the same image.
built = {
    release.bento: BentoImage(
        image_resource_name(release.bento), BentoImageArgs(release.bento, registry)
    ).ref
    for release in releases.values()
    if not release.image
}
images = {track: release.image or built[release.bento] for track, release in releases.items()}


@dataclass(frozen=True)
class ServingRegion:
    """One region's cluster and what runs in it."""

    network: Network
    cluster: Cluster
    in_cluster: pulumi.ResourceOptions
    workload: Workload
    api_keys: ApiKeys
    tracks: dict[str, ModelDeployment]


def serve_region(
    region_name: str,
    network_config: NetworkConfig,
    cluster_config: ClusterConfig,
    vpc: gcp.compute.Network | None,
) -> ServingRegion:
    """Network, cluster, pools, workload and tracks of one region. The stack's own region keeps
    the names of a one-region stack; every other region's names end with the region, so adding
    or removing one changes nothing in the others."""
    home = region_name == region

    def named(base: str) -> str:
        return base if home else f"{base}-{region_name}"

    network = Network(
        named("moderation"),
        NetworkArgs(config=network_config, region=region_name, vpc=vpc),
        opts=on_gcp,
    )
    cluster = Cluster(
        named("moderation"),
        ClusterArgs(
            config=cluster_config,
            project=project,
            network=network,
            labels=labels,
            registry=registry,
            allowed_image_patterns=[
                f"{registry.url}/**",
                *([ADAPTER_IMAGE_PATTERN] if scales_on_serving_metric else []),
            ],
            admission_policy=home,
            node_account_id=None if home else regional_account_id("nodes", region_name),
        ),
        opts=on_gcp,
    )
    node_pools = NodePools(
        named("moderation"),
        NodePoolsArgs(config=config.node_pools, cluster=cluster, labels=labels),
        opts=on_gcp,
    )
    # Kubernetes: everything in this cluster goes through this provider, once nodes exist.
    kubernetes = k8s.Provider(
        named("gke"),
        kubeconfig=cluster.kubeconfig,
        enable_server_side_apply=True,
        opts=pulumi.ResourceOptions(depends_on=[node_pools]),
    )
    in_cluster = pulumi.ResourceOptions(providers={"kubernetes": kubernetes, "gcp": apis.provider})
    workload = Workload(
        named("moderation"),
        WorkloadArgs(
            config=config.workload,
            workload_pool=cluster.workload_pool,
            gcp_account_id=f"{APP}-workload" if home else regional_account_id("pods", region_name),
        ),
        opts=in_cluster,
    )
    api_keys = ApiKeys(
        named("moderation"),
        ApiKeysArgs(
            secret_id=named(f"moderation-{config.environment}") + "-api-key-hashes",
            key_hashes=api_key_hashes,
            accessor_member=workload.gcp_service_account.member,
            namespace=workload.namespace,
            labels=labels,
        ),
        opts=in_cluster,
    )
    tracks = {
        track: ModelDeployment(
            named(f"moderation-{track}"),
            ModelDeploymentArgs(
                config=config.workload,
                track=track,
                release=release,
                image=images[track],
                project=project,
                namespace=workload.namespace,
                service_account_name=workload.service_account_name,
                backend_timeout_sec=config.edge.backend_timeout_sec,
                api_keys=api_keys.file,
            ),
            # Pods start only once their key file can be mounted (provider class, IAM grant).
            opts=pulumi.ResourceOptions.merge(
                in_cluster, pulumi.ResourceOptions(depends_on=[api_keys])
            ),
        )
        for track, release in releases.items()
    }
    if scales_on_serving_metric:
        MetricsAdapter(
            named("metrics-adapter"),
            MetricsAdapterArgs(
                project=project,
                workload_pool=cluster.workload_pool,
                control_plane_cidr=network.master_cidr,
                **({} if home else {"account_id": regional_account_id("cma", region_name)}),
            ),
            opts=in_cluster,
        )
    return ServingRegion(network, cluster, in_cluster, workload, api_keys, tracks)


# The stack's own region first (the config cluster, with several), then the others on its VPC.
serving = {region: serve_region(region, config.network, config.cluster, vpc=None)}
for other in config.fleet.regions if config.fleet else []:
    serving[other.region] = serve_region(
        other.region,
        other.network,
        # The same cluster name in every region: logs, metrics, alerts and the dashboard select
        # the service's clusters by it, and tell regions apart by their `location` label.
        config.cluster.model_copy(update={"node_zones": other.node_zones}),
        vpc=serving[region].network.network,
    )
home = serving[region]
cluster, workload, api_keys, tracks, in_cluster = (
    home.cluster,
    home.workload,
    home.api_keys,
    home.tracks,
    home.in_cluster,
)

# --- edge: release tracks (stable + optional canary/shadow), Cloud Armor, HTTPS gateway ---------
edge = config.edge
GATEWAY_NAME = "moderation"  # the log sinks and LB metrics pick its load balancer by this name
canary_weight = config.release.canary.weight if config.release.canary else 0
weights = {"stable": 100 - canary_weight, "canary": canary_weight}
armor = ArmorPolicy(
    "moderation",
    ArmorPolicyArgs(
        config=edge.armor,
        policy_name=f"moderation-{config.environment}-edge",
        labels=labels,
        # Tracks clients' requests are routed to; the shadow only gets the mirror's copies.
        backends=sum(1 for track in tracks if track in weights),
    ),
    opts=on_gcp,
)
endpoint = PublicEndpoint(
    "moderation",
    PublicEndpointArgs(
        config=edge, resource_prefix=f"moderation-{config.environment}", labels=labels
    ),
    opts=on_gcp,
)
# With several regions: every cluster in the fleet, each track exported from each, and the Gateway
# (in the config cluster, the stack's own region) routing to the imports.
multi_cluster = None
if config.fleet:
    fleet = Fleet(
        "moderation",
        FleetArgs(
            config=config.fleet,
            project=project,
            clusters={name: member.cluster for name, member in serving.items()},
            labels=labels,
        ),
        opts=on_gcp,
    )
    exports = [
        service_export(
            f"moderation-{track}-export-{name}",
            deployment,
            member.workload.namespace,
            labels,
            fleet,
            drain_seconds=config.edge.connection_draining_sec,
            opts=member.in_cluster,
        )
        for name, member in serving.items()
        for track, deployment in member.tracks.items()
    ]
    multi_cluster = MultiCluster(
        max_rate_per_endpoint=math.floor(config.fleet.pod_texts_per_second),
        ingress_ready=fleet.ingress_ready,
        exports=exports,
    )
gateway = EdgeGateway(
    "moderation",
    EdgeGatewayArgs(
        config=edge,
        gateway_name=GATEWAY_NAME,
        namespace=workload.namespace,
        address_name=endpoint.address_name,
        certificate_map_name=endpoint.certificate_map_name,
        ssl_policy_name=f"moderation-{config.environment}-tls",
        security_policy=armor.policy,
        backends=[
            WeightedBackend(track, deployment.service_name, deployment.service_port, weights[track])
            for track, deployment in tracks.items()
            if track in weights
        ],
        mirror=MirrorBackend("shadow", tracks["shadow"].service_name, tracks["shadow"].service_port)
        if "shadow" in tracks
        else None,
        labels=labels,
        multi_cluster=multi_cluster,
    ),
    opts=in_cluster,
)

# --- observability and cost: log sinks, alerts, SLOs, uptime check, dashboard, budget -------------
observed = config.observability
logs = LogPipeline(
    "moderation",
    LogPipelineArgs(
        config=observed.log_sinks,
        project=project,
        region=region,
        labels=labels,
        cluster_name=config.cluster.name,
        namespace=config.workload.namespace,
        gateway_name=GATEWAY_NAME,
        name_prefix=f"moderation-{config.environment}",
        protect=config.is_prod,
    ),
    opts=on_gcp,
)
alerting = Alerting(
    "moderation",
    AlertingArgs(
        config=observed,
        project=project,
        labels=labels,
        cluster_name=config.cluster.name,
        namespace=config.workload.namespace,
        public_host=config.edge.domains[0],
        log_metrics_visible=[logs.log_metrics_visible],
        candidate_tracks=list(config.release.candidates),
        regions=config.regions if config.fleet else [],
    ),
    opts=on_gcp,
)
dashboard = ServiceDashboard(
    "moderation",
    DashboardArgs(
        project=project,
        labels=labels,
        cluster_name=config.cluster.name,
        namespace=config.workload.namespace,
        log_metrics_visible=[logs.log_metrics_visible],
        several_regions=config.fleet is not None,
    ),
    opts=on_gcp,
)
ProjectBudget(
    "moderation",
    BudgetArgs(
        config=config.budget,
        project=project,
        environment=config.environment,
        notification_channels=alerting.channel_ids("WARNING"),
    ),
    opts=pulumi.ResourceOptions(depends_on=apis.enabled),
)

# --- stack outputs --------------------------------------------------------------------------------
pulumi.export("clusterName", cluster.cluster.name)
pulumi.export("clusterLocation", cluster.location)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("registryUrl", registry.url)
pulumi.export("image", images["stable"])
pulumi.export("namespace", workload.namespace)
pulumi.export("stableService", tracks["stable"].service_name)
pulumi.export(
    "internalServiceUrl",
    pulumi.Output.concat(
        "http://", tracks["stable"].service_name, ".", workload.namespace, ".svc.cluster.local"
    ),
)
pulumi.export("apiUrl", f"https://{edge.domains[0]}/v1")
pulumi.export("edgeIp", endpoint.address)
pulumi.export("dnsAuthorizationRecords", endpoint.dns_authorization_records)
pulumi.export("apiKeysSecret", api_keys.secret_name)
pulumi.export("canaryWeight", canary_weight)
pulumi.export("releaseTracks", {track: release.bento for track, release in releases.items()})
pulumi.export("workloadServiceAccount", workload.gcp_service_account.email)
pulumi.export("logsBigQueryDataset", logs.bigquery_dataset)
pulumi.export("logsArchiveBucket", logs.archive_bucket)
pulumi.export("dashboard", dashboard.dashboard_id)
# What the model pods will run on their nodes, and why (service/hardware.py on the machine table):
# tools/capacity.py sizes the pool from it.
serving_choice = config.serving_choice()
if serving_choice is not None and config.serving_pool is not None:
    pulumi.export(
        "serving",
        {
            "machineType": config.serving_pool.machine_type,
            "backend": config.workload.model.backend.value,
            "validated": [str(setting) for setting in config.workload.model.validated],
            "setting": str(serving_choice.setting),
            "reason": serving_choice.reason,
        },
    )
