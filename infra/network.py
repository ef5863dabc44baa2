"""VPC for a private, VPC-native GKE cluster: a subnet with pod/service ranges, Cloud NAT."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.config import NetworkConfig

PODS_RANGE = "pods"
SERVICES_RANGE = "services"


@dataclass(frozen=True)
class NetworkArgs:
    config: NetworkConfig
    region: str
    vpc: gcp.compute.Network | None = None
    """The stack's VPC, when another region declared it: one VPC, a subnet per region."""


class Network(pulumi.ComponentResource):
    """VPC, subnet (private Google access, secondary ranges, optional flow logs), router and NAT.

    Nodes have no public IPs (private cluster), so Cloud NAT is their only way out; private
    Google access keeps traffic to Google APIs (Artifact Registry, logging) on Google's network.
    """

    network: gcp.compute.Network
    subnet: gcp.compute.Subnetwork
    master_cidr: str

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("moderation:infra:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config = args.config
        # Reserved for the control plane's private endpoint (VPC peering), not a subnet.
        self.master_cidr = config.master_cidr

        self.network = args.vpc or gcp.compute.Network(
            name,
            auto_create_subnetworks=False,
            routing_mode="REGIONAL",
            description="Moderation service VPC",
            opts=child,
        )
        flow_logs = (
            gcp.compute.SubnetworkLogConfigArgs(
                aggregation_interval="INTERVAL_5_SEC",
                flow_sampling=config.flow_logs_sampling,
                metadata="INCLUDE_ALL_METADATA",
            )
            if config.flow_logs
            else None
        )
        self.subnet = gcp.compute.Subnetwork(
            f"{name}-nodes",
            network=self.network.id,
            region=args.region,
            ip_cidr_range=config.subnet_cidr,
            private_ip_google_access=True,
            secondary_ip_ranges=[
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name=PODS_RANGE, ip_cidr_range=config.pods_cidr
                ),
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name=SERVICES_RANGE, ip_cidr_range=config.services_cidr
                ),
            ],
            log_config=flow_logs,
            opts=child,
        )
        router = gcp.compute.Router(
            f"{name}-router", network=self.network.id, region=args.region, opts=child
        )
        gcp.compute.RouterNat(
            f"{name}-nat",
            router=router.name,
            region=args.region,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="LIST_OF_SUBNETWORKS",
            subnetworks=[
                gcp.compute.RouterNatSubnetworkArgs(
                    name=self.subnet.id, source_ip_ranges_to_nats=["ALL_IP_RANGES"]
                )
            ],
            log_config=gcp.compute.RouterNatLogConfigArgs(enable=True, filter="ERRORS_ONLY"),
            opts=child,
        )
        self.register_outputs(
            {"networkId": self.network.id, "subnetId": self.subnet.id, "routerId": router.id}
        )
