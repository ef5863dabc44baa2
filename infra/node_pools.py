"""Node pools: small on-demand system pool, autoscaled model pool, optional GPU pool.

The model and GPU pools are tainted so only the Bento (which tolerates the taint) lands there;
kube-system and add-on pods stay on the cheap system pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.cluster import OAUTH_CLOUD_PLATFORM, Cluster
from infra.config import GpuNodePoolConfig, NodePoolConfig, NodePoolsConfig

POOL_LABEL = "moderation.dev/pool"
"""Node label (and taint key) naming the pool; the Deployment selects and tolerates it."""
GPU_TAINT_KEY = "nvidia.com/gpu"


@dataclass(frozen=True)
class NodePoolsArgs:
    config: NodePoolsConfig
    cluster: Cluster
    """The pools' cluster: its location and node zones are theirs."""
    labels: dict[str, str]


class NodePools(pulumi.ComponentResource):
    """All node pools of the cluster; `pools` maps the pool role to its NodePool."""

    pools: dict[str, gcp.container.NodePool]

    def __init__(
        self, name: str, args: NodePoolsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("moderation:infra:NodePools", name, None, opts)
        wanted: dict[str, NodePoolConfig | None] = {
            "system": args.config.system,
            "model": args.config.model,
            "gpu": args.config.gpu,
        }
        self.pools = {
            role: self._pool(f"{name}-{role}", role, pool, args)
            for role, pool in wanted.items()
            if pool is not None
        }
        self.register_outputs({role: pool.name for role, pool in self.pools.items()})

    def _pool(
        self, resource_name: str, role: str, pool: NodePoolConfig, args: NodePoolsArgs
    ) -> gcp.container.NodePool:
        taints = [] if role == "system" else [_taint(POOL_LABEL, role)]
        accelerators = []
        if isinstance(pool, GpuNodePoolConfig):
            taints.append(_taint(GPU_TAINT_KEY, "present"))
            accelerators.append(
                gcp.container.NodePoolNodeConfigGuestAcceleratorArgs(
                    type=pool.accelerator_type,
                    count=pool.accelerator_count,
                    gpu_driver_installation_config=gcp.container.NodePoolNodeConfigGuestAcceleratorGpuDriverInstallationConfigArgs(
                        gpu_driver_version="LATEST"
                    ),
                    gpu_sharing_config=_gpu_sharing(pool),
                )
            )
        return gcp.container.NodePool(
            resource_name,
            cluster=args.cluster.cluster.id,
            location=args.cluster.location,
            node_locations=args.cluster.node_zones,
            autoscaling=gcp.container.NodePoolAutoscalingArgs(
                total_min_node_count=pool.min_nodes,
                total_max_node_count=pool.max_nodes,
                # Spot capacity comes and goes per zone: take it wherever it is.
                location_policy="ANY" if pool.spot else "BALANCED",
            ),
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            upgrade_settings=gcp.container.NodePoolUpgradeSettingsArgs(
                strategy="SURGE", max_surge=1, max_unavailable=0
            ),
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=pool.machine_type,
                disk_size_gb=pool.disk_size_gb,
                disk_type=pool.disk_type,
                image_type="COS_CONTAINERD",
                spot=pool.spot,
                service_account=args.cluster.node_service_account.email,
                oauth_scopes=[OAUTH_CLOUD_PLATFORM],
                shielded_instance_config=gcp.container.NodePoolNodeConfigShieldedInstanceConfigArgs(
                    enable_secure_boot=True, enable_integrity_monitoring=True
                ),
                workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                    mode="GKE_METADATA"
                ),
                gcfs_config=gcp.container.NodePoolNodeConfigGcfsConfigArgs(enabled=True),
                metadata={"disable-legacy-endpoints": "true"},
                labels={POOL_LABEL: role},
                taints=taints,
                guest_accelerators=accelerators,
                resource_labels={**args.labels, "node-pool": role},
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )


def _gpu_sharing(
    pool: GpuNodePoolConfig,
) -> gcp.container.NodePoolNodeConfigGuestAcceleratorGpuSharingConfigArgs | None:
    """GKE time-sharing: pods of several tracks take turns on one GPU (nodePools.gpu.sharing)."""
    if pool.sharing is None:
        return None
    return gcp.container.NodePoolNodeConfigGuestAcceleratorGpuSharingConfigArgs(
        gpu_sharing_strategy=pool.sharing.strategy,
        max_shared_clients_per_gpu=pool.sharing.max_shared_clients_per_gpu,
    )


def _taint(key: str, value: str) -> gcp.container.NodePoolNodeConfigTaintArgs:
    return gcp.container.NodePoolNodeConfigTaintArgs(key=key, value=value, effect="NO_SCHEDULE")
