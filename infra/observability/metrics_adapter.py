"""Custom Metrics - Stackdriver Adapter: serves Cloud Monitoring metrics (Managed Prometheus
included) on the Kubernetes custom and external metrics APIs, so that the HorizontalPodAutoscaler
can scale on a serving metric such as requests in flight.

Follows Google's `adapter_new_resource_model.yaml` (GoogleCloudPlatform/k8s-stackdriver), with
the adapter reading Monitoring through Workload Identity instead of the node's identity, and
hardened beyond the vendor's defaults as far as its image allows: non-root with a high UID, no
capabilities, read-only root filesystem (its self-signed serving certificate goes to a scratch
volume), probes, and a NetworkPolicy. What a manifest scanner still reports is listed, with the
reason, in tests/infra/checkov_exceptions.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
from pulumi_kubernetes.meta.v1 import LabelSelectorArgs, ObjectMetaArgs
from pulumi_kubernetes.networking.v1 import IPBlockArgs, NetworkPolicySpecArgs

from infra.workload import LINK_LOCAL_DNS, METADATA_SERVER
from infra.workload_identity import workload_identity

ADAPTER_IMAGE = "gcr.io/gke-release/custom-metrics-stackdriver-adapter:v0.16.9-gke.0"
"""The release Google's production manifest deploys (k8s-stackdriver
`custom-metrics-stackdriver-adapter/deploy/production/adapter_new_resource_model.yaml`, image
updated 2026-08-17); tests/infra holds a copy of that manifest and checks this against it."""
ADAPTER_IMAGE_PATTERN = "gcr.io/gke-release/custom-metrics-stackdriver-adapter*"
"""Binary Authorization admission pattern for the adapter image."""
NAMESPACE = "custom-metrics"
NAME = "custom-metrics-stackdriver-adapter"
# Where the API server reaches the adapter: GKE's control-plane firewall rule opens 443 to nodes
# (a non-root process may bind it: `ip_unprivileged_port_start` below).
SECURE_PORT = 443
# Any UID works for the adapter's static binary; a high one collides with no host user.
ADAPTER_UID = 65534
SCRATCH = "/tmp"  # noqa: S108 (an emptyDir: the serving certificate, nothing else)
API_VERSIONS = (
    ("custom.metrics.k8s.io", "v1beta1", 100),
    ("custom.metrics.k8s.io", "v1beta2", 200),
    ("external.metrics.k8s.io", "v1beta1", 100),
)


@dataclass(frozen=True)
class MetricsAdapterArgs:
    project: str
    control_plane_cidr: str
    """The control plane's range: the aggregated APIs are called from there."""
    workload_pool: pulumi.Output[str]
    """The cluster's Workload Identity pool (`Cluster.workload_pool`)."""
    account_id: str = "custom-metrics-adapter"
    """Its GCP service account: one per cluster, so project-unique per region."""


class MetricsAdapter(pulumi.ComponentResource):
    """The adapter, its RBAC, its read-only Monitoring identity and its API registrations."""

    def __init__(
        self, name: str, args: MetricsAdapterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("moderation:observability:MetricsAdapter", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        selector = {"k8s-app": NAME}

        namespace = k8s.core.v1.Namespace(
            name, metadata=ObjectMetaArgs(name=NAMESPACE), opts=child
        ).metadata.name
        # The adapter serves an aggregated API: it needs its Kubernetes token.
        reader, account = workload_identity(
            name,
            workload_pool=args.workload_pool,
            namespace=NAMESPACE,
            namespace_ref=namespace,
            service_account=NAME,
            account_id=args.account_id,
            display_name="Custom metrics adapter: reads Cloud Monitoring for the HPA",
            automount_token=True,
            opts=child,
        )
        gcp.projects.IAMMember(
            f"{name}-monitoring-viewer",
            project=args.project,
            role="roles/monitoring.viewer",
            member=reader.member,
            opts=child,
        )
        subject = k8s.rbac.v1.SubjectArgs(
            kind="ServiceAccount", name=account.metadata.name, namespace=namespace
        )

        def bind_cluster_role(key: str, role: str) -> None:
            k8s.rbac.v1.ClusterRoleBinding(
                f"{name}-{key}",
                metadata=ObjectMetaArgs(name=f"{NAME}:{key}"),
                role_ref=k8s.rbac.v1.RoleRefArgs(
                    api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role
                ),
                subjects=[subject],
                opts=child,
            )

        # Delegated authentication and authorization, as every aggregated API server needs.
        bind_cluster_role("auth-delegator", "system:auth-delegator")
        k8s.rbac.v1.RoleBinding(
            f"{name}-auth-reader",
            metadata=ObjectMetaArgs(name=f"{NAME}:auth-reader", namespace="kube-system"),
            role_ref=k8s.rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io",
                kind="Role",
                name="extension-apiserver-authentication-reader",
            ),
            subjects=[subject],
            opts=child,
        )
        resource_reader = k8s.rbac.v1.ClusterRole(
            f"{name}-resource-reader",
            metadata=ObjectMetaArgs(name=f"{NAME}:resource-reader"),
            rules=[
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=[""],
                    resources=["pods", "nodes", "nodes/stats"],
                    verbs=["get", "list", "watch"],
                )
            ],
            opts=child,
        )
        bind_cluster_role("resource-reader", resource_reader.metadata.name)

        k8s.apps.v1.Deployment(
            name,
            metadata=ObjectMetaArgs(name=NAME, namespace=namespace, labels=selector),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=1,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=ObjectMetaArgs(labels=selector),
                    spec=k8s.core.v1.PodSpecArgs(
                        service_account_name=account.metadata.name,
                        security_context=k8s.core.v1.PodSecurityContextArgs(
                            run_as_non_root=True,
                            run_as_user=ADAPTER_UID,
                            run_as_group=ADAPTER_UID,
                            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
                            # A namespaced, "safe" sysctl: lets the non-root adapter bind 443.
                            sysctls=[
                                k8s.core.v1.SysctlArgs(
                                    name="net.ipv4.ip_unprivileged_port_start",
                                    value=str(SECURE_PORT),
                                )
                            ],
                        ),
                        containers=[
                            k8s.core.v1.ContainerArgs(
                                name="adapter",
                                image=ADAPTER_IMAGE,
                                # By tag (see ADAPTER_IMAGE): re-resolve it on every pull.
                                image_pull_policy="Always",
                                command=[
                                    "/adapter",
                                    "--use-new-resource-model=true",
                                    "--fallback-for-container-metrics=true",
                                    f"--secure-port={SECURE_PORT}",
                                    f"--cert-dir={SCRATCH}/certs",
                                ],
                                ports=[
                                    k8s.core.v1.ContainerPortArgs(
                                        name="https", container_port=SECURE_PORT, protocol="TCP"
                                    )
                                ],
                                resources=k8s.core.v1.ResourceRequirementsArgs(
                                    requests={"cpu": "250m", "memory": "400Mi"},
                                    limits={"cpu": "250m", "memory": "400Mi"},
                                ),
                                # TCP probes: its HTTP health paths sit behind delegated auth.
                                liveness_probe=k8s.core.v1.ProbeArgs(
                                    tcp_socket=k8s.core.v1.TCPSocketActionArgs(port="https"),
                                    period_seconds=20,
                                    failure_threshold=3,
                                ),
                                readiness_probe=k8s.core.v1.ProbeArgs(
                                    tcp_socket=k8s.core.v1.TCPSocketActionArgs(port="https"),
                                    period_seconds=10,
                                ),
                                security_context=k8s.core.v1.SecurityContextArgs(
                                    allow_privilege_escalation=False,
                                    privileged=False,
                                    read_only_root_filesystem=True,
                                    run_as_non_root=True,
                                    capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
                                ),
                                volume_mounts=[
                                    k8s.core.v1.VolumeMountArgs(name="scratch", mount_path=SCRATCH)
                                ],
                            )
                        ],
                        volumes=[
                            k8s.core.v1.VolumeArgs(
                                name="scratch",
                                empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="64Mi"),
                            )
                        ],
                    ),
                ),
            ),
            opts=child,
        )
        service = k8s.core.v1.Service(
            name,
            metadata=ObjectMetaArgs(name=NAME, namespace=namespace, labels=selector),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=selector,
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        port=SECURE_PORT, target_port="https", protocol="TCP"
                    )
                ],
            ),
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            name,
            metadata=ObjectMetaArgs(name=NAME, namespace=namespace),
            spec=_network_policy(selector, args.control_plane_cidr),
            opts=child,
        )
        for group, version, priority in API_VERSIONS:
            k8s.apiregistration.v1.APIService(
                f"{name}-{version}-{group.split('.')[0]}",
                metadata=ObjectMetaArgs(name=f"{version}.{group}"),
                spec=k8s.apiregistration.v1.APIServiceSpecArgs(
                    group=group,
                    version=version,
                    group_priority_minimum=100,
                    version_priority=priority,
                    # As Google's manifest: the API server does not verify the adapter's
                    # self-signed serving certificate; traffic stays inside the cluster.
                    insecure_skip_tls_verify=True,
                    service=k8s.apiregistration.v1.ServiceReferenceArgs(
                        name=service.metadata.name, namespace=namespace
                    ),
                ),
                opts=child,
            )
        external_reader = k8s.rbac.v1.ClusterRole(
            f"{name}-external-metrics-reader",
            metadata=ObjectMetaArgs(name=f"{NAME}:external-metrics-reader"),
            rules=[
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=["external.metrics.k8s.io"],
                    resources=["*"],
                    verbs=["get", "list", "watch"],
                )
            ],
            opts=child,
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-hpa-reads-external-metrics",
            metadata=ObjectMetaArgs(name=f"{NAME}:hpa-external-metrics"),
            role_ref=k8s.rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io",
                kind="ClusterRole",
                name=external_reader.metadata.name,
            ),
            subjects=[
                k8s.rbac.v1.SubjectArgs(
                    kind="ServiceAccount", name="horizontal-pod-autoscaler", namespace="kube-system"
                )
            ],
            opts=child,
        )
        self.register_outputs({"namespace": namespace, "service": service.metadata.name})


def _network_policy(selector: dict[str, str], control_plane_cidr: str) -> NetworkPolicySpecArgs:
    """Only the API server calls the adapter; it calls DNS, the metadata server (its Workload
    Identity token) and HTTPS: Cloud Monitoring, and the API server for delegated auth."""
    peer = k8s.networking.v1.NetworkPolicyPeerArgs
    kube_system = peer(
        namespace_selector=LabelSelectorArgs(
            match_labels={"kubernetes.io/metadata.name": "kube-system"}
        )
    )
    tcp = k8s.networking.v1.NetworkPolicyPortArgs
    return NetworkPolicySpecArgs(
        pod_selector=LabelSelectorArgs(match_labels=selector),
        policy_types=["Ingress", "Egress"],
        ingress=[
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                # Straight from the control plane, or through its Konnectivity agents.
                from_=[peer(ip_block=IPBlockArgs(cidr=control_plane_cidr)), kube_system],
                ports=[tcp(port=SECURE_PORT, protocol="TCP")],
            )
        ],
        egress=[
            k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                to=[kube_system, *(peer(ip_block=IPBlockArgs(cidr=c)) for c in LINK_LOCAL_DNS)],
                ports=[tcp(port=53, protocol=protocol) for protocol in ("UDP", "TCP")],
            ),
            *(
                k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                    to=[peer(ip_block=IPBlockArgs(cidr=cidr))], ports=[tcp(port=port)]
                )
                for cidr, port in METADATA_SERVER
            ),
            k8s.networking.v1.NetworkPolicyEgressRuleArgs(ports=[tcp(port=443, protocol="TCP")]),
        ],
    )
