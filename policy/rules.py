"""The kit's non-negotiable secure defaults, as Pulumi policies that a preview or update must pass.

Each rule is a plain function from a resource's inputs (camelCase, as the engine sends them) to
the violations it finds, so the same logic runs in the pack (`pulumi preview --policy-pack
policy`) and in tests on the offline plan (`build/plan/<stack>.json`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from infra.observability.metrics_adapter import NAMESPACE as METRICS_ADAPTER_NAMESPACE

Props = Mapping[str, Any]

CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
REPOSITORY = "gcp:artifactregistry/repository:Repository"
SSL_POLICY = "gcp:compute/sSLPolicy:SSLPolicy"
# Kubernetes kinds that carry a pod template, and where in their inputs the pod spec lies.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
# Third-party manifests run as their vendor ships them: Google's metrics adapter (a tagged image
# that Binary Authorization admits by name) and GKE's own system namespace.
DEFAULT_EXEMPT_NAMESPACES = (METRICS_ADAPTER_NAMESPACE, "kube-system")
EXEMPT_NAMESPACES_KEY = "exemptNamespaces"
IMAGE_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
TLS_AT_LEAST_1_2 = {"TLS_1_2", "TLS_1_3"}


@dataclass(frozen=True)
class Resource:
    """What a rule sees: the type token, the inputs, and the namespaces workload rules skip."""

    type: str
    props: Props
    exempt_namespaces: Sequence[str] = DEFAULT_EXEMPT_NAMESPACES


def _at(props: Props, *path: str) -> Any:
    """The value at `path` in nested inputs, or None where any step is missing."""
    value: Any = props
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _node_configs(resource: Resource) -> Iterator[tuple[str, Props]]:
    """The node configs a resource declares: a cluster's default pool (its deprecated top-level
    `nodeConfig`, or its `nodePools`), a node pool's own."""
    node_config = resource.props.get("nodeConfig")
    if resource.type in (CLUSTER, NODE_POOL) and isinstance(node_config, Mapping):
        yield ("default node pool" if resource.type == CLUSTER else "node pool"), node_config
    if resource.type == CLUSTER:
        for pool in resource.props.get("nodePools") or []:
            if isinstance(pool, Mapping) and isinstance(pool.get("nodeConfig"), Mapping):
                yield "default node pool", pool["nodeConfig"]


def private_nodes(resource: Resource) -> Iterator[str]:
    """Nodes have no public IP: only the load balancer and the authorised control plane face out."""
    if (
        resource.type == CLUSTER
        and _at(resource.props, "privateClusterConfig", "enablePrivateNodes") is not True
    ):
        yield "privateClusterConfig.enablePrivateNodes must be true"
    if (
        resource.type == NODE_POOL
        and _at(resource.props, "networkConfig", "enablePrivateNodes") is False
    ):
        yield "networkConfig.enablePrivateNodes must not be false"


def master_authorized_networks(resource: Resource) -> Iterator[str]:
    """The control plane answers only listed networks, never the whole internet."""
    if resource.type != CLUSTER:
        return
    config = resource.props.get("masterAuthorizedNetworksConfig")
    if not isinstance(config, Mapping):
        yield "masterAuthorizedNetworksConfig must be set"
        return
    if config.get("gcpPublicCidrsAccessEnabled") is True:
        yield "masterAuthorizedNetworksConfig.gcpPublicCidrsAccessEnabled must be false"
    for block in config.get("cidrBlocks") or []:
        cidr = block.get("cidrBlock", "")
        if ipaddress.ip_network(cidr, strict=False).prefixlen == 0:
            yield f"master authorized network {cidr} opens the control plane to the internet"


def workload_identity(resource: Resource) -> Iterator[str]:
    """Pods get Google credentials only through Workload Identity, never the node's."""
    if resource.type == CLUSTER and not _at(
        resource.props, "workloadIdentityConfig", "workloadPool"
    ):
        yield "workloadIdentityConfig.workloadPool must be set"
    for where, node_config in _node_configs(resource):
        if _at(node_config, "workloadMetadataConfig", "mode") != "GKE_METADATA":
            yield f"{where}: nodeConfig.workloadMetadataConfig.mode must be GKE_METADATA"


def shielded_nodes(resource: Resource) -> Iterator[str]:
    """Nodes boot only signed components and report their integrity."""
    if resource.type == CLUSTER and resource.props.get("enableShieldedNodes") is not True:
        yield "enableShieldedNodes must be true"
    for where, node_config in _node_configs(resource):
        shielded = node_config.get("shieldedInstanceConfig") or {}
        if shielded.get("enableSecureBoot") is not True:
            yield f"{where}: shieldedInstanceConfig.enableSecureBoot must be true"
        if shielded.get("enableIntegrityMonitoring") is False:
            yield f"{where}: shieldedInstanceConfig.enableIntegrityMonitoring must not be false"


def binary_authorization(resource: Resource) -> Iterator[str]:
    """Only images the project's Binary Authorization policy admits can run."""
    mode = _at(resource.props, "binaryAuthorization", "evaluationMode")
    if resource.type == CLUSTER and mode != "PROJECT_SINGLETON_POLICY_ENFORCE":
        yield f"binaryAuthorization.evaluationMode is {mode}, not PROJECT_SINGLETON_POLICY_ENFORCE"


def vulnerability_scanning(resource: Resource) -> Iterator[str]:
    """Images are scanned in the registry (GKE retired the security posture's workload scanning:
    the Kubernetes Engine API deprecates `vulnerabilityMode`)."""
    if resource.type == REPOSITORY and resource.props.get("format") == "DOCKER":
        enablement = _at(resource.props, "vulnerabilityScanningConfig", "enablementConfig")
        if enablement != "INHERITED":
            yield f"vulnerabilityScanningConfig.enablementConfig is {enablement}, not INHERITED"


def tls_at_least_1_2(resource: Resource) -> Iterator[str]:
    """The edge refuses TLS below 1.2 (an SSL policy without minTlsVersion allows TLS 1.0)."""
    version = resource.props.get("minTlsVersion")
    if resource.type == SSL_POLICY and version not in TLS_AT_LEAST_1_2:
        yield f"minTlsVersion is {version or 'unset (TLS_1_0)'}, must be TLS_1_2 or TLS_1_3"


def _pod_spec(resource: Resource) -> Props | None:
    """The pod spec of a workload outside the exempt namespaces; None for anything else."""
    path = POD_SPEC_PATHS.get(resource.type)
    namespace = _at(resource.props, "metadata", "namespace")
    if path is None or namespace in resource.exempt_namespaces:
        return None
    spec = _at(resource.props, *path)
    return spec if isinstance(spec, Mapping) else None


def _containers(pod_spec: Props) -> Iterator[Props]:
    yield from pod_spec.get("initContainers") or []
    yield from pod_spec.get("containers") or []


def restricted_containers(resource: Resource) -> Iterator[str]:
    """Containers run as non-root on a read-only root filesystem, without privilege escalation."""
    pod_spec = _pod_spec(resource)
    if pod_spec is None:
        return
    pod_non_root = _at(pod_spec, "securityContext", "runAsNonRoot")
    for container in _containers(pod_spec):
        name, context = container.get("name"), container.get("securityContext") or {}
        if context.get("runAsNonRoot", pod_non_root) is not True:
            yield f"container {name}: runAsNonRoot must be true"
        if context.get("readOnlyRootFilesystem") is not True:
            yield f"container {name}: readOnlyRootFilesystem must be true"
        if context.get("allowPrivilegeEscalation") is not False:
            yield f"container {name}: allowPrivilegeEscalation must be false"
        if context.get("privileged") is True:
            yield f"container {name}: privileged must not be true"


def images_by_digest(resource: Resource) -> Iterator[str]:
    """Images are pinned by digest: what was tested and admitted is exactly what runs."""
    pod_spec = _pod_spec(resource)
    if pod_spec is None:
        return
    for container in _containers(pod_spec):
        image = container.get("image", "")
        if not IMAGE_DIGEST.search(image):
            yield f"container {container.get('name')}: image {image} is not pinned by digest"


@dataclass(frozen=True)
class SecureDefault:
    """One mandatory policy of the pack: its id and rule; workload rules take exempt namespaces."""

    name: str
    rule: Callable[[Resource], Iterator[str]]
    exempts_namespaces: bool = False

    def violations(self, resource: Resource) -> list[str]:
        return list(self.rule(resource))

    def policy(self) -> ResourceValidationPolicy:
        """The rule as a mandatory Pulumi resource policy."""

        def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
            exempt = args.get_config().get(EXEMPT_NAMESPACES_KEY, DEFAULT_EXEMPT_NAMESPACES)
            for message in self.violations(Resource(args.resource_type, args.props, exempt)):
                report_violation(message, None)

        exempt_namespaces_schema = PolicyConfigSchema(
            properties={
                EXEMPT_NAMESPACES_KEY: {
                    "type": "array",
                    "items": {"type": "string"},
                    "default": list(DEFAULT_EXEMPT_NAMESPACES),
                }
            }
        )
        return ResourceValidationPolicy(
            name=self.name,
            description=" ".join((self.rule.__doc__ or self.name).split()),
            validate=validate,
            enforcement_level=EnforcementLevel.MANDATORY,
            config_schema=exempt_namespaces_schema if self.exempts_namespaces else None,
        )


SECURE_DEFAULTS = (
    SecureDefault("gke-private-nodes", private_nodes),
    SecureDefault("gke-master-authorized-networks", master_authorized_networks),
    SecureDefault("gke-workload-identity", workload_identity),
    SecureDefault("gke-shielded-nodes", shielded_nodes),
    SecureDefault("gke-binary-authorization", binary_authorization),
    SecureDefault("vulnerability-scanning", vulnerability_scanning),
    SecureDefault("edge-tls-1-2-minimum", tls_at_least_1_2),
    SecureDefault("containers-non-root-read-only", restricted_containers, exempts_namespaces=True),
    SecureDefault("images-by-digest", images_by_digest, exempts_namespaces=True),
)


def policies() -> list[ResourceValidationPolicy]:
    """Every secure default as a Pulumi policy, in the pack's order."""
    return [secure_default.policy() for secure_default in SECURE_DEFAULTS]
