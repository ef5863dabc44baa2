"""Workload Identity: a Kubernetes service account that acts as a GCP service account, no keys."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs


def workload_identity(
    name: str,
    *,
    workload_pool: pulumi.Output[str],
    namespace: str,
    namespace_ref: pulumi.Input[str],
    service_account: str,
    account_id: str,
    display_name: str,
    automount_token: bool,
    opts: pulumi.ResourceOptions,
) -> tuple[gcp.serviceaccount.Account, k8s.core.v1.ServiceAccount]:
    """The GCP SA, the annotated Kubernetes SA in `namespace_ref` (the namespace resource, so the
    SA waits for it) and the binding that lets `namespace/service_account` act as the GCP SA.

    `workload_pool` is the cluster's output, not a string: the pool `<project>.svc.id.goog`
    exists only once a Workload Identity cluster does, and IAM rejects members of a missing pool.
    """
    gcp_account = gcp.serviceaccount.Account(
        f"{name}-gsa", account_id=account_id, display_name=display_name, opts=opts
    )
    kubernetes_account = k8s.core.v1.ServiceAccount(
        name,
        metadata=ObjectMetaArgs(
            name=service_account,
            namespace=namespace_ref,
            annotations={"iam.gke.io/gcp-service-account": gcp_account.email},
        ),
        automount_service_account_token=automount_token,
        opts=opts,
    )
    gcp.serviceaccount.IAMMember(
        f"{name}-workload-identity",
        service_account_id=gcp_account.name,
        role="roles/iam.workloadIdentityUser",
        member=pulumi.Output.concat(
            "serviceAccount:", workload_pool, f"[{namespace}/{service_account}]"
        ),
        opts=opts,
    )
    return gcp_account, kubernetes_account
