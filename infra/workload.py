"""The Bento on Kubernetes: namespace, identity, network policy, scraping, one track per release.

`Workload` holds what every release shares (namespace, service accounts, NetworkPolicy,
PodMonitoring). `ModelDeployment` is one release track (Deployment, Service, HPA, PDB): the program
creates the stable track, and during a rollout a canary and/or a shadow track, once the API keys
they mount exist; the edge's HTTPRoute splits client traffic between stable and canary and mirrors
a copy of it to the shadow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
from pulumi_kubernetes.apps.v1 import (
    DeploymentSpecArgs,
    DeploymentStrategyArgs,
    RollingUpdateDeploymentArgs,
)
from pulumi_kubernetes.autoscaling.v2 import (
    CrossVersionObjectReferenceArgs,
    HorizontalPodAutoscalerBehaviorArgs,
    HorizontalPodAutoscalerSpecArgs,
    HPAScalingRulesArgs,
    MetricIdentifierArgs,
    MetricSpecArgs,
    MetricTargetArgs,
    PodsMetricSourceArgs,
    ResourceMetricSourceArgs,
)
from pulumi_kubernetes.core.v1 import (
    CapabilitiesArgs,
    ContainerArgs,
    ContainerPortArgs,
    CSIVolumeSourceArgs,
    EmptyDirVolumeSourceArgs,
    EnvVarArgs,
    HTTPGetActionArgs,
    LifecycleArgs,
    LifecycleHandlerArgs,
    PodSecurityContextArgs,
    PodSpecArgs,
    PodTemplateSpecArgs,
    ProbeArgs,
    ResourceRequirementsArgs,
    SeccompProfileArgs,
    SecurityContextArgs,
    ServicePortArgs,
    ServiceSpecArgs,
    SleepActionArgs,
    TolerationArgs,
    TopologySpreadConstraintArgs,
    VolumeArgs,
    VolumeMountArgs,
)
from pulumi_kubernetes.meta.v1 import LabelSelectorArgs, ObjectMetaArgs
from pulumi_kubernetes.networking.v1 import (
    IPBlockArgs,
    NetworkPolicyEgressRuleArgs,
    NetworkPolicyIngressRuleArgs,
    NetworkPolicyPeerArgs,
    NetworkPolicyPortArgs,
    NetworkPolicySpecArgs,
)
from pulumi_kubernetes.policy.v1 import PodDisruptionBudgetSpecArgs

from infra.config import APP, SERVICE_TIMEOUT_HEADROOM_S, StableRelease, WorkloadConfig
from infra.node_pools import GPU_TAINT_KEY, POOL_LABEL
from infra.observability import metrics as m
from infra.observability.metrics import REQUESTS_IN_FLIGHT
from infra.sizing import inference_threads
from infra.workload_identity import workload_identity

HTTP_PORT = 3000
SERVICE_PORT = 80
# The user baked into BentoML's container images (`bentoml containerize`): uid/gid 1034.
BENTO_UID = 1034
TRACK_LABEL = "moderation.dev/track"
VERSION_LABEL = "app.kubernetes.io/version"  # the Bento version of the pod's release
API_KEYS_MOUNT = "/etc/moderation/api-keys"
API_KEYS_REVISION_ANNOTATION = "moderation.dev/api-keys-revision"
# Google Front End / L7 load balancer proxies and health checkers reach pods from these ranges.
GOOGLE_LB_RANGES = ("35.191.0.0/16", "130.211.0.0/22")
# Besides kube-dns pods, DNS answers come from host-network resolvers no pod selector matches:
# NodeLocal DNSCache (default on GKE >= 1.34) and the metadata server (Cloud DNS for GKE).
LINK_LOCAL_DNS = ("169.254.20.10/32", "169.254.169.254/32")
# Pods reach the GKE metadata server (Workload Identity tokens) at these addresses. Nothing else
# leaves a model pod: the models are in the image, the API keys come through the CSI driver (on the
# node), logs go to stdout and metrics are scraped.
METADATA_SERVER = (("169.254.169.254/32", 80), ("169.254.169.252/32", 988))
# In-flight moderation requests per pod, as the Managed Prometheus custom-metrics adapter names it.
IN_FLIGHT_METRIC = f"prometheus.googleapis.com|{REQUESTS_IN_FLIGHT.name}|{REQUESTS_IN_FLIGHT.kind}"


@dataclass(frozen=True)
class ApiKeysFile:
    """The API key hashes as a file in the pod: one `sha256:<hex>` per line (contracts.md).

    `csi` is the volume the file comes from (the edge's Secret Manager volume); `revision` changes
    with every new set of keys and is stamped on the pod template, so the pods roll onto it.
    """

    csi: CSIVolumeSourceArgs
    file_name: str
    revision: pulumi.Input[str]


MIN_READY_SECONDS = 10
MAX_SURGE = 1
# Before a first pod's start-up probe begins (estimates, docs/deploy.md "First deploy"): GKE's
# cluster autoscaler adds a (spot) node to a pool at zero in a few minutes; image streaming starts
# the container before the multi-GB image is pulled in full; the CSI driver retries the key file
# mount until the secret's IAM grant has propagated.
NODE_FROM_ZERO_SECONDS = 300
IMAGE_PULL_SECONDS = 300
KEY_FILE_MOUNT_SECONDS = 120


def first_pod_seconds(config: WorkloadConfig) -> int:
    """How long a first pod may take to become available: the figures above, then the start-up
    allowed (`workload.startupTimeoutSeconds`) and `minReadySeconds`."""
    waits = NODE_FROM_ZERO_SECONDS + IMAGE_PULL_SECONDS + KEY_FILE_MOUNT_SECONDS
    return waits + config.startup_timeout_seconds + MIN_READY_SECONDS


def await_timeouts(config: WorkloadConfig) -> pulumi.CustomTimeouts:
    """How long `pulumi up` waits for the Deployment (pulumi-kubernetes' default: 10 minutes):
    one first pod to create it, one per surge batch of the minimum replicas to update it."""
    pod_minutes = math.ceil(first_pod_seconds(config) / 60)
    batches = math.ceil(config.autoscaling.min_replicas / MAX_SURGE)
    return pulumi.CustomTimeouts(create=f"{pod_minutes}m", update=f"{batches * pod_minutes}m")


@dataclass(frozen=True)
class ModelDeploymentArgs:
    config: WorkloadConfig
    track: str
    release: StableRelease
    image: pulumi.Input[str]
    """The image by digest: the release's prebuilt one, or the one the program built."""
    project: str
    namespace: pulumi.Input[str]
    service_account_name: pulumi.Input[str]
    backend_timeout_sec: int  # the edge's: the service times requests out just before it
    api_keys: ApiKeysFile | None = None


class ModelDeployment(pulumi.ComponentResource):
    """One release track of the Bento: Deployment, ClusterIP Service, HPA and PDB.

    Outputs `service_name` and `service_port`, which the Gateway's HTTPRoute points at.
    """

    deployment: k8s.apps.v1.Deployment
    service: k8s.core.v1.Service
    service_name: pulumi.Output[str]
    service_port: int = SERVICE_PORT

    def __init__(
        self, name: str, args: ModelDeploymentArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("moderation:infra:ModelDeployment", name, None, opts)
        # Children do not inherit the component's depends_on: what the track waits for (its key
        # file's provider class and IAM grant) must be theirs too, or the pods start before it.
        child = pulumi.ResourceOptions(parent=self, depends_on=opts.depends_on if opts else None)
        object_name = f"{APP}-{args.track}"
        selector = {"app.kubernetes.io/name": APP, TRACK_LABEL: args.track}
        version = args.release.bento.split(":", 1)[1]
        labels = {**selector, VERSION_LABEL: version}

        def metadata(annotations: dict[str, str] | None = None) -> ObjectMetaArgs:
            return ObjectMetaArgs(
                name=object_name,
                namespace=args.namespace,
                labels=labels,
                annotations=annotations,
            )

        self.deployment = k8s.apps.v1.Deployment(
            name,
            metadata=metadata({"moderation.dev/bento": args.release.bento}),
            spec=DeploymentSpecArgs(
                # No `replicas`: the HPA owns the count, a re-apply must not reset it.
                selector=LabelSelectorArgs(match_labels=selector),
                revision_history_limit=5,
                min_ready_seconds=MIN_READY_SECONDS,
                progress_deadline_seconds=first_pod_seconds(args.config),
                strategy=DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=RollingUpdateDeploymentArgs(
                        max_unavailable=0, max_surge=MAX_SURGE
                    ),
                ),
                template=PodTemplateSpecArgs(
                    metadata=ObjectMetaArgs(
                        labels=labels,
                        annotations={
                            "moderation.dev/bento": args.release.bento,
                            **(
                                {API_KEYS_REVISION_ANNOTATION: args.api_keys.revision}
                                if args.api_keys
                                else {}
                            ),
                        },
                    ),
                    spec=_pod_spec(args, selector),
                ),
            ),
            opts=child.merge(pulumi.ResourceOptions(custom_timeouts=await_timeouts(args.config))),
        )
        self.service = k8s.core.v1.Service(
            name,
            metadata=metadata(),
            spec=ServiceSpecArgs(
                type="ClusterIP",
                selector=selector,
                ports=[
                    ServicePortArgs(
                        name="http", port=SERVICE_PORT, target_port="http", protocol="TCP"
                    )
                ],
            ),
            opts=child,
        )
        self.service_name = self.service.metadata.name
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            name,
            metadata=metadata(),
            spec=_autoscaler_spec(object_name, args.config),
            opts=child,
        )
        k8s.policy.v1.PodDisruptionBudget(
            name,
            metadata=metadata(),
            spec=PodDisruptionBudgetSpecArgs(
                max_unavailable=1, selector=LabelSelectorArgs(match_labels=selector)
            ),
            opts=child,
        )
        self.register_outputs(
            {"deployment": self.deployment.metadata.name, "service": self.service_name}
        )


# Padded characters per model call on a GPU: 64 chat-length texts, or 12 of 512 tokens.
GPU_BATCH_CHARS = 32_768


def _pod_spec(args: ModelDeploymentArgs, selector: dict[str, str]) -> PodSpecArgs:
    """Restricted-profile pod: non-root, read-only root, no capabilities, RuntimeDefault seccomp."""
    config = args.config
    probe_period = 10
    volumes = [
        # BentoML and Python need a writable scratch dir; the root filesystem stays read-only.
        VolumeArgs(name="tmp", empty_dir=EmptyDirVolumeSourceArgs(size_limit="1Gi")),
    ]
    mounts = [VolumeMountArgs(name="tmp", mount_path="/tmp")]  # noqa: S108
    env = [
        EnvVarArgs(name="BENTOML_PORT", value=str(HTTP_PORT)),
        # Caches (Hugging Face, torch) go to the writable /tmp volume, and nothing is fetched
        # at run time: the models are in the image.
        EnvVarArgs(name="XDG_CACHE_HOME", value="/tmp/.cache"),  # noqa: S108
        EnvVarArgs(name="HF_HUB_OFFLINE", value="1"),
        # The request log's `logging.googleapis.com/trace` names the project's trace.
        EnvVarArgs(name="GOOGLE_CLOUD_PROJECT", value=args.project),
        # Intra-op threads = the CPU the pod is guaranteed: torch would otherwise start one per
        # core of the node, and threads contending for too few cores run several times slower.
        EnvVarArgs(
            name="MODERATION_INFERENCE_THREADS",
            value=str(inference_threads(config.resources.cpu_request)),
        ),
        # The per-key limit (the edge limits per client IP only: it cannot tell keys apart).
        EnvVarArgs(
            name="MODERATION_KEY_REQUESTS_PER_MINUTE",
            value=str(config.key_rate_limit.requests_per_minute),
        ),
        EnvVarArgs(name="MODERATION_KEY_BURST", value=str(config.key_rate_limit.burst)),
        EnvVarArgs(
            name="MODERATION_KEY_CHARS_PER_MINUTE",
            value=str(config.key_rate_limit.characters_per_minute),
        ),
        # service/settings.py: the edge's timeout, and the queue bounds
        EnvVarArgs(
            name="MODERATION_REQUEST_TIMEOUT_S",
            value=str(args.backend_timeout_sec - SERVICE_TIMEOUT_HEADROOM_S),
        ),
        EnvVarArgs(name="MODERATION_MAX_QUEUED_REQUESTS", value=str(config.queue.max_requests)),
        EnvVarArgs(name="MODERATION_MAX_QUEUED_TEXTS", value=str(config.queue.max_texts)),
    ]
    if args.api_keys is not None:
        volumes.append(
            VolumeArgs(
                name="api-keys",
                csi=args.api_keys.csi,
            )
        )
        mounts.append(VolumeMountArgs(name="api-keys", mount_path=API_KEYS_MOUNT, read_only=True))
        env.append(
            EnvVarArgs(
                name="MODERATION_API_KEY_HASHES_FILE",
                value=f"{API_KEYS_MOUNT}/{args.api_keys.file_name}",
            )
        )
    tolerations = [
        TolerationArgs(
            key=POOL_LABEL, operator="Equal", value=config.node_pool, effect="NoSchedule"
        )
    ]
    limits = {"cpu": config.resources.cpu_limit, "memory": config.resources.memory_limit}
    if config.node_pool == "gpu":
        tolerations.append(
            TolerationArgs(key=GPU_TAINT_KEY, operator="Exists", effect="NoSchedule")
        )
        limits[GPU_TAINT_KEY] = "1"
        # One model call at a time, and larger ones: the GPU does the work and larger batches
        # keep it busy; a CPU pod runs one single-threaded call per thread, each at most the
        # service's default characters (service/backends.py, service/settings.py).
        env += [
            EnvVarArgs(name="MODERATION_INFERENCE_LANES", value="1"),
            EnvVarArgs(name="MODERATION_MAX_BATCH_CHARS", value=str(GPU_BATCH_CHARS)),
        ]
    return PodSpecArgs(
        service_account_name=args.service_account_name,
        # Workload Identity goes through the GKE metadata server; no API token in the pod.
        automount_service_account_token=False,
        security_context=PodSecurityContextArgs(
            run_as_non_root=True,
            run_as_user=BENTO_UID,
            run_as_group=BENTO_UID,
            fs_group=BENTO_UID,
            seccomp_profile=SeccompProfileArgs(type="RuntimeDefault"),
        ),
        node_selector={POOL_LABEL: config.node_pool},
        tolerations=tolerations,
        topology_spread_constraints=[
            TopologySpreadConstraintArgs(
                max_skew=1,
                topology_key=topology_key,
                when_unsatisfiable="ScheduleAnyway",
                label_selector=LabelSelectorArgs(match_labels=selector),
            )
            for topology_key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
        ],
        termination_grace_period_seconds=config.termination_grace_seconds,
        containers=[
            ContainerArgs(
                name="bento",
                image=args.image,
                ports=[ContainerPortArgs(name="http", container_port=HTTP_PORT, protocol="TCP")],
                env=env,
                resources=ResourceRequirementsArgs(
                    requests={
                        "cpu": config.resources.cpu_request,
                        "memory": config.resources.memory_request,
                    },
                    limits=limits,
                ),
                # Model loading can take minutes: liveness only starts once startup succeeded.
                startup_probe=ProbeArgs(
                    http_get=HTTPGetActionArgs(path="/readyz", port="http"),
                    period_seconds=probe_period,
                    failure_threshold=config.startup_timeout_seconds // probe_period,
                ),
                liveness_probe=ProbeArgs(
                    http_get=HTTPGetActionArgs(path="/livez", port="http"),
                    period_seconds=probe_period,
                    timeout_seconds=5,
                    failure_threshold=3,
                ),
                readiness_probe=ProbeArgs(
                    http_get=HTTPGetActionArgs(path="/readyz", port="http"),
                    period_seconds=5,
                    timeout_seconds=3,
                    failure_threshold=2,
                ),
                # Keep serving while the load balancer drops the endpoint; SIGTERM then stops
                # new connections and drains (service/shutdown.py), within the grace period
                # (the config rule: preStop + edge backendTimeoutSec + exit).
                lifecycle=LifecycleArgs(
                    pre_stop=LifecycleHandlerArgs(
                        sleep=SleepActionArgs(seconds=config.pre_stop_seconds)
                    )
                ),
                security_context=SecurityContextArgs(
                    allow_privilege_escalation=False,
                    read_only_root_filesystem=True,
                    run_as_non_root=True,
                    privileged=False,
                    capabilities=CapabilitiesArgs(drop=["ALL"]),
                ),
                volume_mounts=mounts,
            )
        ],
        volumes=volumes,
    )


def _autoscaler_spec(target: str, config: WorkloadConfig) -> HorizontalPodAutoscalerSpecArgs:
    """Scale on in-flight requests when configured (serving load), always also on CPU."""
    scaling = config.autoscaling
    metrics = [
        MetricSpecArgs(
            type="Resource",
            resource=ResourceMetricSourceArgs(
                name="cpu",
                target=MetricTargetArgs(
                    type="Utilization", average_utilization=scaling.target_cpu_utilization
                ),
            ),
        )
    ]
    if scaling.target_in_flight_requests is not None:
        metrics.append(
            MetricSpecArgs(
                type="Pods",
                pods=PodsMetricSourceArgs(
                    metric=MetricIdentifierArgs(name=IN_FLIGHT_METRIC),
                    target=MetricTargetArgs(
                        type="AverageValue",
                        average_value=str(scaling.target_in_flight_requests),
                    ),
                ),
            )
        )
    return HorizontalPodAutoscalerSpecArgs(
        scale_target_ref=CrossVersionObjectReferenceArgs(
            api_version="apps/v1", kind="Deployment", name=target
        ),
        min_replicas=scaling.min_replicas,
        max_replicas=scaling.max_replicas,
        metrics=metrics,
        behavior=HorizontalPodAutoscalerBehaviorArgs(
            # Scale up at once, scale down slowly: model pods are expensive to start.
            scale_down=HPAScalingRulesArgs(stabilization_window_seconds=300),
        ),
    )


@dataclass(frozen=True)
class WorkloadArgs:
    config: WorkloadConfig
    workload_pool: pulumi.Output[str]
    """The cluster's Workload Identity pool (`Cluster.workload_pool`)."""
    gcp_account_id: str = f"{APP}-workload"
    """The pods' GCP service account: one per cluster, so project-unique per region."""


class Workload(pulumi.ComponentResource):
    """Namespace, Workload Identity, NetworkPolicy and PodMonitoring: what every track shares."""

    namespace: pulumi.Output[str]
    service_account_name: pulumi.Output[str]
    gcp_service_account: gcp.serviceaccount.Account

    def __init__(
        self, name: str, args: WorkloadArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("moderation:infra:Workload", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config = args.config
        app_selector = {"app.kubernetes.io/name": APP}

        namespace = k8s.core.v1.Namespace(
            name,
            metadata=ObjectMetaArgs(
                name=config.namespace,
                labels={
                    # The API server itself rejects pods that break the restricted profile.
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            ),
            opts=child,
        )
        self.namespace = namespace.metadata.name

        # The pods never talk to the Kubernetes API: no token mounted.
        self.gcp_service_account, service_account = workload_identity(
            name,
            workload_pool=args.workload_pool,
            namespace=config.namespace,
            namespace_ref=self.namespace,
            service_account=APP,
            account_id=args.gcp_account_id,
            display_name="Moderation pods (Workload Identity)",
            automount_token=False,
            opts=child,
        )
        self.service_account_name = service_account.metadata.name

        k8s.networking.v1.NetworkPolicy(
            name,
            metadata=ObjectMetaArgs(name=APP, namespace=self.namespace),
            spec=_network_policy(app_selector),
            opts=child,
        )
        k8s.apiextensions.CustomResource(
            name,
            api_version="monitoring.googleapis.com/v1",
            kind="PodMonitoring",
            metadata=ObjectMetaArgs(name=APP, namespace=self.namespace),
            spec={
                "selector": {"matchLabels": app_selector},
                "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}],
                # Every series carries its pod's track and Bento version: the dashboard and the
                # rollout alerts compare candidates with stable without any service code.
                "targetLabels": {
                    "fromPod": [
                        {"from": TRACK_LABEL, "to": m.TRACK},
                        {"from": VERSION_LABEL, "to": m.VERSION},
                    ]
                },
            },
            opts=child,
        )
        self.register_outputs(
            {"namespace": self.namespace, "gcpServiceAccount": self.gcp_service_account.email}
        )


def _network_policy(app_selector: dict[str, str]) -> NetworkPolicySpecArgs:
    """Default-deny for the model pods, then only what serving needs."""
    http = [NetworkPolicyPortArgs(port=HTTP_PORT, protocol="TCP")]
    dns = [NetworkPolicyPortArgs(port=53, protocol=protocol) for protocol in ("UDP", "TCP")]
    return NetworkPolicySpecArgs(
        pod_selector=LabelSelectorArgs(match_labels=app_selector),
        policy_types=["Ingress", "Egress"],
        ingress=[
            NetworkPolicyIngressRuleArgs(
                from_=[
                    *(
                        NetworkPolicyPeerArgs(ip_block=IPBlockArgs(cidr=cidr))
                        for cidr in GOOGLE_LB_RANGES
                    ),
                    # Managed Prometheus collectors scrape /metrics.
                    NetworkPolicyPeerArgs(
                        namespace_selector=LabelSelectorArgs(
                            match_labels={"kubernetes.io/metadata.name": "gmp-system"}
                        )
                    ),
                ],
                ports=http,
            )
        ],
        egress=[
            NetworkPolicyEgressRuleArgs(
                to=[
                    NetworkPolicyPeerArgs(
                        namespace_selector=LabelSelectorArgs(
                            match_labels={"kubernetes.io/metadata.name": "kube-system"}
                        )
                    ),
                    *(
                        NetworkPolicyPeerArgs(ip_block=IPBlockArgs(cidr=cidr))
                        for cidr in LINK_LOCAL_DNS
                    ),
                ],
                ports=dns,
            ),
            *(
                NetworkPolicyEgressRuleArgs(
                    to=[NetworkPolicyPeerArgs(ip_block=IPBlockArgs(cidr=cidr))],
                    ports=[NetworkPolicyPortArgs(port=port, protocol="TCP")],
                )
                for cidr, port in METADATA_SERVER
            ),
        ],
    )
