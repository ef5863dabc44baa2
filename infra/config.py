"""Stack configuration: read once from Pulumi config into a frozen, validated `StackConfig`.

Every setting that differs between environments lives in `Pulumi.<stack>.yaml`; the program code is
the same for all stacks. Validation happens here, before any resource is declared, so a typo or a
bad value fails fast with the config key in the message (`moderation:nodePools.model.minNodes`).

Adding a concern: define one sub-model below (camelCase keys in YAML, snake_case in Python), add one
field to `StackConfig` in the marked section, and one `moderation:<key>` section to each stack file.
Its ComponentResource takes that section as `config` in its Args dataclass; values of other
sections are passed as their own fields, and each value is passed once.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self, get_origin

import pulumi
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Secret,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from infra.machines import (
    GPU_FAMILIES,
    GPU_TYPES,
    UnknownMachineType,
    machine_family,
    room_on,
    shape_of,
)
from infra.placeholders import describe, find_placeholders, under_mocks
from infra.sizing import node_hardware, pods_per_node
from service.catalog import FP32_CPU, Backend, Runtime
from service.hardware import Choice, choose_setting
from service.key_list import parse_key_list

NAMESPACE = "moderation"
"""Pulumi config namespace of this project (`moderation:<key>`)."""

APP = "moderation"


class ConfigError(ValueError):
    """Bad stack configuration; the message names each offending `moderation:` key."""


def _cidr(value: str) -> str:
    """A strict IPv4 network in CIDR notation (host bits must be zero)."""
    try:
        network = ipaddress.IPv4Network(value, strict=True)
    except ValueError as error:
        raise ValueError(f"{value!r} is not an IPv4 network in CIDR notation ({error})") from None
    return str(network)


Cidr = Annotated[str, AfterValidator(_cidr)]
Label = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
ResourceName = Annotated[str, Field(pattern=r"^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$")]
Quantity = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti)?$")]
ImageByDigest = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+@sha256:[0-9a-f]{64}$",
        description="An image pinned by digest: <registry>/<path>@sha256:<64 hex>. Tags drift.",
    ),
]
BentoTag = Annotated[str, Field(pattern=r"^[a-z0-9_.-]+:[a-z0-9_.-]+$")]


class _Section(BaseModel):
    """Base of every config section: immutable, camelCase keys, unknown keys rejected."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


# --- gcp ------------------------------------------------------------------------------------------


class GcpConfig(_Section):
    """Where the stack lives. Read from the provider's own keys `gcp:project` and `gcp:region`."""

    project: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")]
    region: Annotated[str, Field(pattern=r"^[a-z]+-[a-z]+[0-9]+$")]


# --- network --------------------------------------------------------------------------------------


class NetworkConfig(_Section):
    """VPC ranges. Pods and services use subnet secondary ranges (VPC-native cluster)."""

    subnet_cidr: Cidr
    pods_cidr: Cidr
    services_cidr: Cidr
    master_cidr: Cidr = Field(description="/28 for the GKE control plane's private endpoint.")
    flow_logs: bool = False
    flow_logs_sampling: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5

    @model_validator(mode="after")
    def _ranges_are_disjoint(self) -> Self:
        ranges = {
            "subnetCidr": self.subnet_cidr,
            "podsCidr": self.pods_cidr,
            "servicesCidr": self.services_cidr,
            "masterCidr": self.master_cidr,
        }
        networks = {key: ipaddress.IPv4Network(value) for key, value in ranges.items()}
        keys = list(networks)
        for i, first in enumerate(keys):
            for second in keys[i + 1 :]:
                if networks[first].overlaps(networks[second]):
                    raise ValueError(f"{first} {ranges[first]} overlaps {second} {ranges[second]}")
        if networks["masterCidr"].prefixlen != 28:
            raise ValueError(f"masterCidr must be a /28, got {self.master_cidr}")
        return self


# --- cluster --------------------------------------------------------------------------------------


class AuthorizedNetwork(_Section):
    name: str
    cidr: Cidr


class MaintenanceWindow(_Section):
    """A recurring window (RFC 5545 RRULE) in UTC, e.g. weekend nights."""

    start_time: str = "2025-01-04T02:00:00Z"
    end_time: str = "2025-01-04T08:00:00Z"
    recurrence: str = "FREQ=WEEKLY;BYDAY=SA,SU"


class _Zones(_Section):
    """The node zones of one cluster, all in one region."""

    node_zones: Annotated[list[str], Field(min_length=1)]

    @model_validator(mode="after")
    def _zones_in_one_region(self) -> Self:
        regions = {zone.rsplit("-", 1)[0] for zone in self.node_zones}
        if len(regions) != 1:
            raise ValueError(f"nodeZones must all be in one region, got {self.node_zones}")
        return self

    @property
    def region(self) -> str:
        """The region of the node zones (the stack's `gcp:region`: checked across sections)."""
        return self.node_zones[0].rsplit("-", 1)[0]


class ClusterConfig(_Zones):
    """The GKE control plane: safer-cluster parity switches that differ per environment."""

    name: ResourceName = "moderation"
    regional: bool = Field(
        description="Regional control plane (3 zones, SLA) or zonal (one free zonal cluster)."
    )
    release_channel: Literal["RAPID", "REGULAR", "STABLE"] = "REGULAR"
    kubernetes_version: Annotated[str, Field(pattern=r"^1\.[0-9]{2}$")] = Field(
        description="Minimum control-plane minor version; Kubernetes objects are validated "
        "against this version's OpenAPI schema."
    )
    master_authorized_networks: list[AuthorizedNetwork] = []
    maintenance_window: MaintenanceWindow = MaintenanceWindow()
    deletion_protection: bool
    binary_authorization: Literal["PROJECT_SINGLETON_POLICY_ENFORCE", "DISABLED"] = (
        "PROJECT_SINGLETON_POLICY_ENFORCE"
    )
    kms_key_rotation_days: Annotated[int, Field(ge=1, le=365)] = 90

    @property
    def location(self) -> str:
        """Region for a regional control plane, else the first node zone."""
        return self.region if self.regional else self.node_zones[0]


# --- node pools -----------------------------------------------------------------------------------


class NodePoolConfig(_Section):
    machine_type: str
    min_nodes: Annotated[int, Field(ge=0, le=1000)]
    max_nodes: Annotated[int, Field(ge=1, le=1000)]
    spot: bool = False
    disk_size_gb: Annotated[int, Field(ge=20, le=65536)] = 50
    disk_type: Literal["pd-standard", "pd-balanced", "pd-ssd", "hyperdisk-balanced"] = "pd-balanced"

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Self:
        if self.min_nodes > self.max_nodes:
            raise ValueError(f"minNodes {self.min_nodes} is above maxNodes {self.max_nodes}")
        return self

    @model_validator(mode="after")
    def _in_the_machine_table(self) -> Self:
        """Only machine types infra/machines.py holds: node room and price are known for them."""
        try:
            shape_of(self.machine_type)
        except UnknownMachineType as error:
            raise ValueError(f"machineType {self.machine_type!r}: {error}") from None
        return self


class GpuSharingConfig(_Section):
    """GKE GPU time-sharing: several pods (a canary and a shadow beside stable) take turns on one
    GPU; each still requests `nvidia.com/gpu: 1` and GKE advertises that many per GPU."""

    strategy: Literal["TIME_SHARING"] = "TIME_SHARING"
    max_shared_clients_per_gpu: Annotated[int, Field(ge=2, le=48)] = 2


class GpuNodePoolConfig(NodePoolConfig):
    accelerator_type: str
    accelerator_count: Annotated[int, Field(ge=1, le=16)] = 1
    sharing: GpuSharingConfig | None = Field(
        default=None, description="Time-share each GPU between pods; unset = one pod per GPU."
    )

    @property
    def pods_per_node_limit(self) -> int:
        """Pods one node's GPUs hold: one each, or `maxSharedClientsPerGpu` each when shared."""
        shared = self.sharing.max_shared_clients_per_gpu if self.sharing else 1
        return self.accelerator_count * shared

    @model_validator(mode="after")
    def _gpu_machine(self) -> Self:
        if self.accelerator_type not in GPU_TYPES:
            raise ValueError(
                f"acceleratorType {self.accelerator_type!r} is not one of "
                f"{', '.join(sorted(GPU_TYPES))}"
            )
        attaches = machine_family(self.machine_type).gpu_types
        if not attaches:
            raise ValueError(
                f"machineType {self.machine_type!r} cannot attach GPUs; use one of "
                f"{', '.join(sorted(GPU_FAMILIES))}"
            )
        if self.accelerator_type not in attaches:
            raise ValueError(
                f"machineType {self.machine_type!r} cannot attach {self.accelerator_type}; "
                f"its family attaches {', '.join(sorted(attaches))}"
            )
        return self


class NodePoolsConfig(_Section):
    """A small on-demand system pool, the autoscaled model pool, and an optional GPU pool."""

    system: NodePoolConfig
    model: NodePoolConfig
    gpu: GpuNodePoolConfig | None = None

    @model_validator(mode="after")
    def _system_is_on_demand(self) -> Self:
        if self.system.spot:
            raise ValueError("system.spot must be false: kube-system pods need on-demand nodes")
        if self.system.min_nodes < 1:
            raise ValueError("system.minNodes must be at least 1")
        return self


# --- registry -------------------------------------------------------------------------------------


class RegistryConfig(_Section):
    """Artifact Registry repository for the Bento images, with cleanup policies."""

    repository_id: ResourceName = "moderation"
    keep_recent_versions: Annotated[int, Field(ge=1, le=1000)] = 10
    delete_untagged_after_days: Annotated[int, Field(ge=1, le=3650)] = 14
    immutable_tags: bool = True


# --- workload -------------------------------------------------------------------------------------


class Resources(_Section):
    cpu_request: Quantity
    memory_request: Quantity
    cpu_limit: Quantity
    memory_limit: Quantity


class AutoscalingConfig(_Section):
    """HPA bounds; CPU is the fallback signal, in-flight requests the serving signal."""

    min_replicas: Annotated[int, Field(ge=1, le=1000)]
    max_replicas: Annotated[int, Field(ge=1, le=1000)]
    target_cpu_utilization: Annotated[int, Field(ge=10, le=100)] = 70
    target_in_flight_requests: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="Average in-flight requests per pod (Managed Prometheus metric via the "
        "custom metrics adapter); unset = CPU only.",
    )

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas {self.min_replicas} is above maxReplicas {self.max_replicas}"
            )
        return self


# The service's own request timeout is the edge's backendTimeoutSec minus this, so that its 503
# with Retry-After reaches the client before the load balancer gives up on the request.
SERVICE_TIMEOUT_HEADROOM_S = 2
# After the last request is answered, a pod's process needs this long to exit.
EXIT_SECONDS = 5


class QueueConfig(_Section):
    """The pod's request queue (MODERATION_MAX_QUEUED_*): beyond it, 503 with Retry-After."""

    max_requests: Annotated[int, Field(ge=1)] = 256
    max_texts: Annotated[int, Field(ge=1024)] = Field(
        default=4096, description="At least the largest request (MODERATION_MAX_INPUTS, 1024)."
    )


class KeyRateLimitConfig(_Section):
    """The service's own per-API-key limit, the authoritative one (docs/security.md): counted on
    the key's id after the header is parsed, so every spelling of one key shares a bucket. Each pod
    admits `requestsPerMinute` a minute per key, `burst` at once, and `charactersPerMinute` of text
    as it reaches the model (the work, which requests alone do not bound: 0 = none); then 429
    with Retry-After."""

    requests_per_minute: Annotated[int, Field(ge=1, le=1_000_000)]
    burst: Annotated[int, Field(ge=1, le=100_000)] = 20
    # About 50 texts of the 20,000-character maximum a minute, per pod.
    characters_per_minute: Annotated[int, Field(ge=0, le=1_000_000_000)] = 1_000_000


class WorkloadConfig(_Section):
    """The Bento on Kubernetes: namespace, sizing, scaling and shutdown behaviour."""

    namespace: ResourceName = "moderation"
    node_pool: Literal["model", "gpu"] = "model"
    model: Runtime = Field(
        default=Runtime(backend=Backend.TRANSFORMERS, validated=(FP32_CPU,)),
        description="The release catalog's model the pods are sized for: its `backend` and "
        "`validated` settings, as its catalog entry lists them (service/catalog.yaml). The pool "
        "must run one of them natively; capacity and cost (tools/capacity.py) follow the one "
        "its nodes run.",
    )
    resources: Resources
    autoscaling: AutoscalingConfig
    queue: QueueConfig = QueueConfig()
    startup_timeout_seconds: Annotated[int, Field(ge=30, le=3600)] = 600
    pre_stop_seconds: Annotated[int, Field(ge=0, le=120)] = Field(
        default=10, description="Serving on while the load balancer takes the pod out."
    )
    termination_grace_seconds: Annotated[int, Field(ge=5, le=600)] = 90
    key_rate_limit: KeyRateLimitConfig = KeyRateLimitConfig(requests_per_minute=300, burst=50)


# --- release (contract: docs/models.md "Roll out a new model") --------------------------------


class StableRelease(_Section):
    """A Bento to run. Without `image`, `pulumi up` builds the Bento's image (exported by
    `make bento`) and deploys it by digest; with it, that prebuilt image (e.g. from CI) runs."""

    bento: BentoTag
    image: ImageByDigest | None = None


class CanaryRelease(StableRelease):
    weight: Annotated[int, Field(ge=0, le=100)]


class ReleaseConfig(_Section):
    """Which Bento runs: the stable one and, during a rollout, candidates: a canary taking
    `weight`% of the traffic, and a shadow that gets a copy of every API request (the load
    balancer mirrors it and drops the shadow's answer, so no client ever sees one)."""

    stable: StableRelease
    canary: CanaryRelease | None = None
    shadow: StableRelease | None = None

    @property
    def candidates(self) -> dict[str, StableRelease]:
        """The candidate tracks that run now, by track name."""
        tracks = {"canary": self.canary, "shadow": self.shadow}
        return {track: release for track, release in tracks.items() if release is not None}

    @model_validator(mode="after")
    def _candidates_are_other_releases(self) -> Self:
        for track, release in self.candidates.items():
            if release.bento == self.stable.bento:
                raise ValueError(
                    f"{track}.bento is the stable Bento {self.stable.bento}: nothing to test"
                )
        return self


# --- edge (HTTPS, Cloud Armor, API keys) ---------------------------------------------------------

Hostname = Annotated[
    str,
    Field(max_length=253, pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"),
]
ApiKeyHash = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
# The only windows Cloud Armor accepts for rate-limit thresholds.
ArmorInterval = Literal[10, 30, 60, 120, 180, 240, 300, 600, 900, 1200, 1800, 2700, 3600]


def _ip_network(value: str) -> str:
    """An IPv4 or IPv6 network (a single address is a /32 or /128)."""
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as error:
        raise ValueError(f"{value!r} is not an IP network ({error})") from None


class RateLimitConfig(_Section):
    """At most `count` requests per `intervalSec` seconds from one client; then HTTP 429."""

    count: Annotated[int, Field(ge=1, le=1_000_000)]
    interval_sec: ArmorInterval = 60


class ArmorConfig(_Section):
    """Cloud Armor: one limit per client IP over all requests, deny lists, WAF."""

    per_ip: RateLimitConfig
    ip_ban_duration_sec: Annotated[int, Field(ge=60, le=86_400)] | None = Field(
        default=None, description="Ban an IP over its limit for this long instead of throttling."
    )
    deny_ip_ranges: list[Annotated[str, AfterValidator(_ip_network)]] = []
    deny_region_codes: list[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]] = []
    adaptive_protection: bool = False


class EdgeConfig(_Section):
    """The public HTTPS endpoint: domains, load balancer backend settings, Cloud Armor."""

    domains: Annotated[list[Hostname], Field(min_length=1)]
    dns_managed_zone: ResourceName | None = Field(
        default=None, description="Cloud DNS zone holding the domains; unset = DNS kept elsewhere."
    )
    log_sample_rate: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    backend_timeout_sec: Annotated[int, Field(ge=1, le=3600)] = 60
    connection_draining_sec: Annotated[int, Field(ge=0, le=3600)] = 30
    armor: ArmorConfig

    @model_validator(mode="after")
    def _domains_unique(self) -> Self:
        if len(set(self.domains)) != len(self.domains):
            raise ValueError(f"domains has duplicates: {self.domains}")
        return self


def _unique_hashes(hashes: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(hashes)) != len(hashes):
        raise ValueError("apiKeyHashes has duplicates")
    return hashes


def _key_list(value: Any) -> Any:
    """A comma-separated list is accepted too: the server's MODERATION_API_KEY_HASHES format."""
    return parse_key_list(value) if isinstance(value, str) else value


ApiKeyHashes = Annotated[
    tuple[ApiKeyHash, ...],
    Field(min_length=1),
    BeforeValidator(_key_list),
    AfterValidator(_unique_hashes),
]


Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]
Severity = Literal["CRITICAL", "WARNING"]


# --- observability (monitoring, logging, alerting) ------------------------------------------------


class NotificationChannelConfig(_Section):
    """An e-mail address that receives alerts of the listed severities.

    PagerDuty, Opsgenie and Slack all accept alerts by e-mail (their integration addresses), which
    keeps tokens out of stack files; `severities: [CRITICAL]` makes a channel page-only.
    """

    name: ResourceName
    email_address: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")]
    severities: Annotated[tuple[Severity, ...], Field(min_length=1)] = ("CRITICAL", "WARNING")


class LogSinksConfig(_Section):
    """Where the service's and the load balancer's logs are kept beyond Cloud Logging's default."""

    bigquery_retention_days: Annotated[int, Field(ge=1, le=3650)]
    archive_retention_days: Annotated[int, Field(ge=1, le=3650)]
    archive_lock_retention: bool = Field(
        default=False,
        description="Lock the archive bucket's retention policy. Irreversible: a locked bucket "
        "cannot be deleted before its newest object is archiveRetentionDays old.",
    )
    archive_nearline_after_days: Annotated[int, Field(ge=1)] = 30
    archive_coldline_after_days: Annotated[int, Field(ge=1)] = 90
    pubsub_forwarder: bool = Field(
        default=False, description="Also publish logs to Pub/Sub for an ELK or Datadog forwarder."
    )

    @model_validator(mode="after")
    def _lifecycle_in_order(self) -> Self:
        if not (
            self.archive_nearline_after_days
            < self.archive_coldline_after_days
            < self.archive_retention_days
        ):
            raise ValueError(
                "need archiveNearlineAfterDays < archiveColdlineAfterDays < archiveRetentionDays"
            )
        return self


class AlertThresholds(_Section):
    """When to page. Tuned per stack: dev tolerates more than prod."""

    error_ratio: Fraction = Field(description="Share of 5xx responses over 5 minutes.")
    p99_latency_seconds: Annotated[float, Field(gt=0)]
    container_restarts_per_ten_minutes: Annotated[int, Field(ge=1)] = 3
    autoscaler_at_max_minutes: Annotated[int, Field(ge=1, le=1440)] = 15
    armor_denials_per_second: Annotated[float, Field(gt=0)]


class RolloutAlertsConfig(_Section):
    """When a candidate track (canary, shadow) behaves worse than, or unlike, stable."""

    flag_rate_drift: Fraction = Field(
        default=0.05,
        description="Largest allowed difference, in any category, between the share of texts "
        "the candidate flags and the share stable flags (0.05 = 5 percentage points).",
    )
    error_ratio_margin: Fraction = Field(
        default=0.01, description="Candidate 5xx share above stable's by more than this alerts."
    )
    p99_latency_ratio: Annotated[float, Field(gt=1.0, le=10.0)] = Field(
        default=1.5, description="Candidate p99 above this multiple of stable's p99 alerts."
    )
    min_samples: Annotated[int, Field(ge=1)] = Field(
        default=200,
        description="Texts (flag rates) or requests (errors, latency) each track must have "
        "answered within the window before they are compared: small samples are noise.",
    )
    window_minutes: Annotated[int, Field(ge=5, le=1440)] = 30


class SloConfig(_Section):
    """Service level objectives over a rolling window; burn-rate alerts guard the error budget."""

    availability_goal: Annotated[float, Field(ge=0.9, le=0.9999)]
    latency_goal: Annotated[float, Field(ge=0.9, le=0.9999)]
    latency_threshold_seconds: Annotated[float, Field(gt=0)]
    rolling_period_days: Annotated[int, Field(ge=1, le=30)] = 28


class ObservabilityConfig(_Section):
    """Logging sinks, alert thresholds, SLO targets and notification channels of one stack."""

    notification_channels: Annotated[list[NotificationChannelConfig], Field(min_length=1)]
    log_sinks: LogSinksConfig
    alerts: AlertThresholds
    slo: SloConfig
    rollout: RolloutAlertsConfig = RolloutAlertsConfig()
    uptime_check_period_seconds: Literal[60, 300, 600, 900] = 60

    @model_validator(mode="after")
    def _channel_names_unique(self) -> Self:
        names = [channel.name for channel in self.notification_channels]
        if len(names) != len(set(names)):
            raise ValueError(f"notificationChannels names must be unique, got {names}")
        if not any("CRITICAL" in channel.severities for channel in self.notification_channels):
            raise ValueError("at least one notification channel must receive CRITICAL alerts")
        return self


# --- budget ---------------------------------------------------------------------------------------


class BudgetConfig(_Section):
    """A monthly billing budget on this stack's project; notifications at each threshold."""

    billing_account: Annotated[str, Field(pattern=r"^[0-9A-F]{6}-[0-9A-F]{6}-[0-9A-F]{6}$")]
    monthly_amount_usd: Annotated[int, Field(ge=1)]
    thresholds: Annotated[tuple[Annotated[float, Field(gt=0, le=2)], ...], Field(min_length=1)] = (
        0.5,
        0.9,
        1.0,
    )
    forecast_threshold: Annotated[float, Field(gt=0, le=2)] | None = 1.0

    @model_validator(mode="after")
    def _thresholds_ascending(self) -> Self:
        if list(self.thresholds) != sorted(set(self.thresholds)):
            raise ValueError(f"thresholds must be ascending and distinct, got {self.thresholds}")
        return self


# --- several regions ------------------------------------------------------------------------------

RANGE_FIELDS = ("subnet_cidr", "pods_cidr", "services_cidr", "master_cidr")
ACCOUNT_ID_MAX = 30
"""IAM service account ids are 6-30 characters."""


class RegionConfig(_Zones):
    """One more serving region: its own private cluster (the `cluster` section's switches, these
    zones) on its own subnet of the stack's VPC, hence its own, disjoint address ranges."""

    network: NetworkConfig


class FleetConfig(_Section):
    """Serving from several regions behind one multi-cluster Gateway (docs/deploy.md "Serving
    from several regions"). The stack's own region (`gcp:region`, `network`, `cluster.nodeZones`)
    is the first one and holds the config cluster; `regions` lists the others."""

    regions: Annotated[list[RegionConfig], Field(min_length=1)]
    features: Literal["create", "existing"] = Field(
        default="create",
        description="The multi-cluster services and ingress fleet features are one per project: "
        "`create` declares them (and keeps them on destroy), `existing` adopts the ones another "
        "stack or `gcloud` turned on.",
    )
    peak_texts_per_second: Annotated[float, Field(gt=0)] = Field(
        description="The busiest rate the stack must serve, with one region lost."
    )
    pod_texts_per_second: Annotated[float, Field(gt=0)] = Field(
        description="What one model pod sustains (`make cost` prints it for the stack's pods)."
    )

    @model_validator(mode="after")
    def _regions_distinct(self) -> Self:
        names = [region.region for region in self.regions]
        if len(names) != len(set(names)):
            raise ValueError(f"regions must be distinct, got {names}")
        return self


def regional_account_id(prefix: str, region: str) -> str:
    """A project-unique service account id for one region's copy of an account (prefixes are
    short enough for the longest region names, never cut: a cut id could collide)."""
    account_id = f"{prefix}-{region}"
    if len(account_id) > ACCOUNT_ID_MAX:
        raise ValueError(f"service account id {account_id!r} is over {ACCOUNT_ID_MAX} characters")
    return account_id


# --- the whole stack ------------------------------------------------------------------------------


class StackConfig(_Section):
    """Everything one stack needs. Built once by `load_stack_config()`; immutable afterwards."""

    gcp: GcpConfig
    environment: Literal["dev", "prod"]
    cost_center: Label
    network: NetworkConfig
    cluster: ClusterConfig
    node_pools: NodePoolsConfig
    registry: RegistryConfig = RegistryConfig()
    workload: WorkloadConfig
    release: ReleaseConfig
    observability: ObservabilityConfig
    budget: BudgetConfig
    edge: EdgeConfig
    fleet: FleetConfig | None = None
    api_key_hashes: Secret[ApiKeyHashes] = Field(
        description="`sha256:<hex>` of each accepted API key; secret config, never plaintext "
        "(`pulumi config set --secret moderation:apiKeyHashes '[\"sha256:...\"]'`).",
        # sha256("example-api-key-not-for-use"): what the plan tool runs with.
        examples=[["sha256:5dfcfb67fa31b118480a0cbab87c1773cf3b64f472119b79575998f5924ea943"]],
    )
    # Other concerns add their section here (one field, one sub-model above).

    @property
    def labels(self) -> dict[str, str]:
        """GCP labels for every resource that takes labels (cost reports group by these)."""
        return {"environment": self.environment, "app": APP, "cost-center": self.cost_center}

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    @model_validator(mode="after")
    def _cross_section_rules(self) -> Self:
        """Rules spanning sections; each message starts with the key it is about."""
        zones_outside = [
            zone for zone in self.cluster.node_zones if not zone.startswith(f"{self.gcp.region}-")
        ]
        if zones_outside:
            raise ValueError(
                f"cluster.nodeZones {zones_outside} are not in gcp:region {self.gcp.region}"
            )
        if self.is_prod:
            if not self.cluster.master_authorized_networks:
                raise ValueError("cluster.masterAuthorizedNetworks must not be empty in prod")
            if any(
                ipaddress.IPv4Network(net.cidr).prefixlen == 0
                for net in self.cluster.master_authorized_networks
            ):
                raise ValueError("cluster.masterAuthorizedNetworks must not hold 0.0.0.0/0 in prod")
            if not self.cluster.deletion_protection:
                raise ValueError("cluster.deletionProtection must be true in prod")
            if self.cluster.binary_authorization == "DISABLED":
                raise ValueError("cluster.binaryAuthorization must be enforced in prod")
        if not self.is_prod and self.observability.log_sinks.archive_lock_retention:
            raise ValueError(
                "observability.logSinks.archiveLockRetention: only prod archives keep a "
                "retention policy (a dev stack must stay destroyable)"
            )
        if self.workload.node_pool == "gpu" and self.node_pools.gpu is None:
            raise ValueError("workload.nodePool is 'gpu' but nodePools.gpu is not set")
        if self.edge.connection_draining_sec > self.workload.termination_grace_seconds:
            raise ValueError(
                f"edge.connectionDrainingSec {self.edge.connection_draining_sec} is above "
                f"workload.terminationGraceSeconds {self.workload.termination_grace_seconds}: "
                "pods would be killed while the load balancer still drains them"
            )
        if self.edge.backend_timeout_sec <= SERVICE_TIMEOUT_HEADROOM_S:
            raise ValueError(
                f"edge.backendTimeoutSec {self.edge.backend_timeout_sec} leaves the service no "
                f"time: its own timeout is {SERVICE_TIMEOUT_HEADROOM_S} s shorter"
            )
        workload = self.workload
        shutdown = workload.pre_stop_seconds + self.edge.backend_timeout_sec + EXIT_SECONDS
        if shutdown > workload.termination_grace_seconds:
            raise ValueError(
                f"workload.terminationGraceSeconds {workload.termination_grace_seconds} is below "
                f"workload.preStopSeconds {workload.pre_stop_seconds} + edge.backendTimeoutSec "
                f"{self.edge.backend_timeout_sec} + {EXIT_SECONDS} s to exit: a request accepted "
                "just before SIGTERM would be cut off"
            )
        if self.is_prod and self.edge.armor.ip_ban_duration_sec is None:
            raise ValueError("edge.armor.ipBanDurationSec must be set in prod (ban abusive IPs)")
        if self.is_prod and not self.edge.armor.adaptive_protection:
            raise ValueError("edge.armor.adaptiveProtection must be true in prod")
        return self

    @property
    def regions(self) -> list[str]:
        """Every serving region, the stack's own first."""
        others = [region.region for region in self.fleet.regions] if self.fleet else []
        return [self.gcp.region, *others]

    @model_validator(mode="after")
    def _one_region_lost_peak_still_served(self) -> Self:
        """With several regions, the others must carry the peak while one is down (their HPA
        maxima; the pool check below keeps the pools able to hold them)."""
        fleet = self.fleet
        if fleet is None:
            return self
        if len(set(self.regions)) != len(self.regions):
            raise ValueError(f"fleet.regions repeats gcp:region {self.gcp.region}")
        ranges = [("network", self.network)] + [
            (f"fleet.regions[{i}].network", region.network)
            for i, region in enumerate(fleet.regions)
        ]
        for i, (first_key, first) in enumerate(ranges):
            for second_key, second in ranges[i + 1 :]:
                for field in RANGE_FIELDS:
                    mine = ipaddress.IPv4Network(getattr(second, field))
                    if any(
                        mine.overlaps(ipaddress.IPv4Network(getattr(first, other)))
                        for other in RANGE_FIELDS
                    ):
                        raise ValueError(
                            f"{second_key}.{to_camel(field)} overlaps a range of {first_key}: "
                            "the regions share one VPC"
                        )
        for key, network in ranges[1:]:
            # Each region's network is its own section: a region left without flow logs
            # would go unnoticed next to the stack's own, which has them.
            for field in ("flow_logs", "flow_logs_sampling"):
                if getattr(network, field) != getattr(self.network, field):
                    raise ValueError(
                        f"{key}.{to_camel(field)} {getattr(network, field)} differs from "
                        f"network.{to_camel(field)} {getattr(self.network, field)}: every "
                        "region logs its flows as the stack's own region does"
                    )
        per_region = self.workload.autoscaling.max_replicas * fleet.pod_texts_per_second
        survivors = len(self.regions) - 1
        if survivors * per_region < fleet.peak_texts_per_second:
            raise ValueError(
                f"fleet.peakTextsPerSecond {fleet.peak_texts_per_second:g} is more than the "
                f"{survivors} region(s) left when one is lost can serve: {survivors} x "
                f"workload.autoscaling.maxReplicas {self.workload.autoscaling.max_replicas} x "
                f"fleet.podTextsPerSecond {fleet.pod_texts_per_second:g} = "
                f"{survivors * per_region:g}: raise maxReplicas (and the pools), or add a region"
            )
        return self

    @model_validator(mode="after")
    def _model_pods_fit_their_pool(self) -> Self:
        """A pod larger than its node, or an HPA maximum the pool cannot hold, stays Pending."""
        pool_key = self.workload.node_pool
        pool = self.node_pools.gpu if pool_key == "gpu" else self.node_pools.model
        if pool is None:
            return self
        room = room_on(pool.machine_type)
        requests = self.workload.resources
        per_node = pods_per_node(room, requests.cpu_request, requests.memory_request)
        if isinstance(pool, GpuNodePoolConfig):  # each pod takes a GPU (or a time-shared slot)
            per_node = min(per_node, pool.pods_per_node_limit)
        if per_node == 0:
            raise ValueError(
                f"workload.resources requests (cpu {requests.cpu_request}, memory "
                f"{requests.memory_request}) do not fit on one {pool.machine_type} node of "
                f"nodePools.{pool_key} (room for pods: {room.cpu:.2f} CPU, "
                f"{room.memory_gib:.1f} GiB)"
            )
        scaling = self.workload.autoscaling
        # The stable track at its maximum plus one surge pod while it rolls out, and each
        # candidate (canary, shadow) at its minimum.
        candidates = len(self.release.candidates)
        needed = scaling.max_replicas + 1 + scaling.min_replicas * candidates
        if per_node * pool.max_nodes < needed:
            raise ValueError(
                f"nodePools.{pool_key}.maxNodes {pool.max_nodes} x {per_node} pod(s) per "
                f"{pool.machine_type} node holds {per_node * pool.max_nodes} pods, fewer than the "
                f"{needed} that workload.autoscaling.maxReplicas {scaling.max_replicas} needs "
                "(+1 surge pod, + minReplicas per canary or shadow): raise maxNodes, or lower the "
                "requests or maxReplicas"
            )
        return self

    @property
    def serving_pool(self) -> NodePoolConfig | None:
        """The node pool the model pods run on (`workload.nodePool`)."""
        return self.node_pools.gpu if self.workload.node_pool == "gpu" else self.node_pools.model

    def serving_choice(self) -> Choice | None:
        """The setting the service will choose on the serving pool's nodes (service/hardware.py
        on the machine table's features): what capacity and cost are figured for."""
        pool = self.serving_pool
        if pool is None:
            return None
        accelerator = pool.accelerator_type if isinstance(pool, GpuNodePoolConfig) else None
        return choose_setting(self.workload.model, node_hardware(pool.machine_type, accelerator))

    @model_validator(mode="after")
    def _model_pool_runs_a_validated_setting_natively(self) -> Self:
        """A pool whose CPU (or GPU) lacks every validated setting's feature would serve the fp32
        reference instead, at a cost the capacity figures do not assume (infra/machines.py,
        service/hardware.py)."""
        choice = self.serving_choice()
        if choice is not None and choice.fallback:
            pool = self.serving_pool
            assert pool is not None
            validated = ", ".join(str(setting) for setting in self.workload.model.validated)
            raise ValueError(
                f"workload.model.validated [{validated}]: nodePools.{self.workload.node_pool}."
                f"machineType {pool.machine_type!r} runs none of these natively "
                f"({choice.reason}); validate a setting its CPU runs (`make validate-precision`) "
                "or choose a family that has the feature (infra/machines.py)"
            )
        return self


# --- loading --------------------------------------------------------------------------------------


def _decode(value: Any) -> Any:
    """Pulumi hands structured config over as JSON text; scalars stay strings."""
    if isinstance(value, str) and value[:1] in "{[":
        return json.loads(value)
    return value


def _problem(detail: Mapping[str, Any]) -> str:
    """One line per problem, starting with the config key a user edits.

    Whole-stack rules (StackConfig validators) have no location: their message starts with the
    key below `moderation:` ("cluster.deletionProtection must be ..."), and gets the namespace here.
    """
    if detail["type"] == "missing":
        message = "is required but missing"
    elif detail["type"] == "extra_forbidden":
        message = "is not a known setting (typo?)"
    else:
        message = str(detail["msg"]).removeprefix("Value error, ")
    if not detail["loc"]:
        return f"{NAMESPACE}:{message}"
    head, *rest = (str(part) for part in detail["loc"])
    if head == "gcp" and rest:
        return f"gcp:{'.'.join(rest)}: {message}"
    return f"{NAMESPACE}:{'.'.join([head, *rest])}: {message}"


def parse_stack_config(values: Mapping[str, Any]) -> StackConfig:
    """Validate raw config (`{"moderation:network": {...}, "gcp:project": "..."}`).

    Values may be decoded objects (from a stack YAML file) or JSON text (from the Pulumi engine).
    Raises ConfigError listing every problem, each with its key.
    """
    prefix = f"{NAMESPACE}:"
    sections: dict[str, Any] = {
        key.removeprefix(prefix): _decode(value)
        for key, value in values.items()
        if key.startswith(prefix)
    }
    gcp = {
        key.removeprefix("gcp:"): _decode(value)
        for key, value in values.items()
        if key in ("gcp:project", "gcp:region")
    }
    try:
        return StackConfig.model_validate({**sections, "gcp": gcp})
    except ValidationError as error:
        problems = [_problem(detail) for detail in error.errors()]
        raise ConfigError("invalid stack configuration:\n  " + "\n  ".join(problems)) from None


def secret_settings() -> dict[str, Any]:
    """Each secret setting's key (`moderation:<name>`) and its documented example value.

    Secret settings are the `Secret[...]` fields of `StackConfig`; the plan tool, which cannot
    decrypt a stack's secrets, runs the program with these examples, still marked secret.
    """
    return {
        f"{NAMESPACE}:{field.alias}": field.examples[0]
        for field in StackConfig.model_fields.values()
        if get_origin(field.annotation) is Secret
    }


def refuse_placeholders(values: Mapping[str, Any]) -> None:
    """A real deploy (not the mocks) with a placeholder left in the config stops here."""
    if under_mocks():
        return
    found = find_placeholders(
        {key: _decode(value) for key, value in values.items()}, secret_settings()
    )
    if found:
        raise ConfigError(
            f"{len(found)} placeholder value(s) in the stack config; replace each, e.g. "
            "`pulumi config set --path '<key after moderation:>' <value>`, or edit "
            "Pulumi.<stack>.yaml (docs/deploy.md):\n  " + describe(found)
        )


def load_stack_config() -> StackConfig:
    """Read this stack's config from the Pulumi engine (or from the plan tool's mocks)."""
    keys = {**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    values = {
        key: pulumi.runtime.get_config(key)
        for key in keys
        if key.startswith(f"{NAMESPACE}:") or key.startswith("gcp:")
    }
    config = parse_stack_config(values)
    refuse_placeholders(values)
    return config
