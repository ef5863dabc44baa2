"""Pulumi program: the moderation service on hardened GKE. Reads top to bottom:
config -> GCP components -> Kubernetes provider -> Kubernetes components -> stack outputs.

Run by the Pulumi CLI (`Pulumi.yaml` has `main: infra/`, so this file runs as a script) and by
`python -m infra.plan` under mocks, which runs it the same way.
"""

import sys
from pathlib import Path

if not __package__:
    # Run as a script by the Pulumi CLI: make `infra` importable as a package, and drop infra/
    # itself from the path so that no module here can shadow a stdlib or third-party module.
    _infra_dir = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _infra_dir]
    sys.path.insert(0, str(_infra_dir.parent))

import pulumi
import pulumi_kubernetes as k8s

from infra.cluster import Cluster, ClusterArgs
from infra.config import load_stack_config
from infra.network import Network, NetworkArgs
from infra.node_pools import NodePools, NodePoolsArgs
from infra.registry import Registry, RegistryArgs
from infra.workload import Workload, WorkloadArgs

# --- config: read and validated once; nothing is declared if it is wrong --------------------------
config = load_stack_config()
project, region, labels = config.gcp.project, config.gcp.region, config.labels

# --- Google Cloud ---------------------------------------------------------------------------------
network = Network("moderation", NetworkArgs(config=config.network, region=region))
registry = Registry(
    "moderation",
    RegistryArgs(config=config.registry, project=project, region=region, labels=labels),
)
cluster = Cluster(
    "moderation",
    ClusterArgs(
        config=config.cluster,
        project=project,
        region=region,
        location=config.cluster_location,
        network=network,
        labels=labels,
        allowed_image_patterns=[f"{registry.url}/**"],
    ),
)
registry.grant_read("moderation-nodes-pull", cluster.node_service_account.member)
node_pools = NodePools(
    "moderation",
    NodePoolsArgs(
        config=config.node_pools,
        cluster=cluster,
        location=config.cluster_location,
        zones=config.cluster.node_zones,
        labels=labels,
    ),
)

# --- Kubernetes: everything below goes through this provider, once nodes exist -------------------
kubernetes = k8s.Provider(
    "gke",
    kubeconfig=cluster.kubeconfig,
    enable_server_side_apply=True,
    opts=pulumi.ResourceOptions(depends_on=[node_pools]),
)
in_cluster = pulumi.ResourceOptions(providers={"kubernetes": kubernetes})

workload = Workload(
    "moderation",
    WorkloadArgs(config=config.workload, release=config.release.stable, project=project),
    opts=in_cluster,
)
# Other concerns plug in here: edge (gateway, canary track, API keys), observability (sinks,
# alerts, dashboards, budgets). Each is one component taking what it needs from the above.

# --- stack outputs --------------------------------------------------------------------------------
pulumi.export("clusterName", cluster.cluster.name)
pulumi.export("clusterLocation", config.cluster_location)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("registryUrl", registry.url)
pulumi.export("image", config.release.stable.image)
pulumi.export("namespace", workload.namespace)
pulumi.export("stableService", workload.stable.service_name)
# In-cluster endpoint; the public HTTPS endpoint is exported by the edge component.
pulumi.export(
    "internalServiceUrl",
    pulumi.Output.concat(
        "http://", workload.stable.service_name, ".", workload.namespace, ".svc.cluster.local"
    ),
)
pulumi.export("workloadServiceAccount", workload.gcp_service_account.email)
