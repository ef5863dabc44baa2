"""Custom Metrics - Stackdriver Adapter: serves Cloud Monitoring metrics (Managed Prometheus
included) on the Kubernetes custom and external metrics APIs, so that the HorizontalPodAutoscaler
can scale on a serving metric such as requests in flight.

Follows Google's `adapter_new_resource_model.yaml` (GoogleCloudPlatform/k8s-stackdriver), with
the adapter reading Monitoring through Workload Identity instead of the node's identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs

from infra.workload_identity import workload_identity

ADAPTER_IMAGE = "gcr.io/gke-release/custom-metrics-stackdriver-adapter:v0.15.1-gke.0"
ADAPTER_IMAGE_PATTERN = "gcr.io/gke-release/custom-metrics-stackdriver-adapter*"
"""Binary Authorization admission pattern for the adapter image."""
NAMESPACE = "custom-metrics"
NAME = "custom-metrics-stackdriver-adapter"
API_VERSIONS = (
    ("custom.metrics.k8s.io", "v1beta1", 100),
    ("custom.metrics.k8s.io", "v1beta2", 200),
    ("external.metrics.k8s.io", "v1beta1", 100),
)


@dataclass(frozen=True)
class MetricsAdapterArgs:
    project: str
    workload_pool: pulumi.Output[str]
    """The cluster's Workload Identity pool (`Cluster.workload_pool`)."""


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
            account_id="custom-metrics-adapter",
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
                            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault")
                        ),
                        containers=[
                            k8s.core.v1.ContainerArgs(
                                name="adapter",
                                image=ADAPTER_IMAGE,
                                command=[
                                    "/adapter",
                                    "--use-new-resource-model=true",
                                    "--fallback-for-container-metrics=true",
                                ],
                                resources=k8s.core.v1.ResourceRequirementsArgs(
                                    requests={"cpu": "250m", "memory": "400Mi"},
                                    limits={"cpu": "250m", "memory": "400Mi"},
                                ),
                                security_context=k8s.core.v1.SecurityContextArgs(
                                    allow_privilege_escalation=False
                                ),
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
                ports=[k8s.core.v1.ServicePortArgs(port=443, target_port=443, protocol="TCP")],
            ),
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
