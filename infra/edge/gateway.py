"""GKE Gateway API objects that expose the API over HTTPS only.

One `gke-l7-global-external-managed` Gateway on the static IP, serving the Certificate Manager
map. Its HTTPS listener carries the only route to the service, for the API's real paths
(`/v1/moderations`, `/v1/models`: exact paths, so no client-chosen path reaches a pod) and, for
the external uptime check, `/readyz`; anything else gets the load balancer's 404, so `/metrics`
and `/docs.json` stay internal. The route matches paths only: this class does not program
HTTPRoute method matching (GKE's conformance report lists HTTPRouteMethodMatching as
unsupported), so each path's method is enforced by Cloud Armor (`infra/edge/armor.py`,
`ROUTED_OPERATIONS`) and by the service itself (405). The HTTP listener exists only to
answer with a redirect to HTTPS, and every HTTPS answer carries HSTS. The route splits traffic
between the stable and the canary Service by weight and, with a shadow track, mirrors a copy of
every API request to the shadow's Service, whose answers never reach a client.

Policies: `GCPGatewayPolicy` pins the SSL policy (TLS >= 1.2, MODERN ciphers);
`GCPBackendPolicy` per Service attaches Cloud Armor, request logging, the backend timeout and
connection draining; `HealthCheckPolicy` per Service probes `/readyz`, so a pod that is still
loading models receives no traffic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from infra.config import EdgeConfig
from infra.fleet import MCS_API_GROUP

GATEWAY_CLASS = "gke-l7-global-external-managed"
MULTI_CLUSTER_GATEWAY_CLASS = "gke-l7-global-external-managed-mc"
GATEWAY_API = "gateway.networking.k8s.io/v1"
GKE_POLICY_API = "networking.gke.io/v1"
CERTMAP_ANNOTATION = "networking.gke.io/certmap"
HTTPS_LISTENER = "https"
HTTP_LISTENER = "http"
# The API's operations (service/app.py), path -> method.
API_OPERATIONS = {"/v1/moderations": "POST", "/v1/models": "GET"}
HEALTH_CHECK_PATH = "/readyz"
ROUTED_OPERATIONS = {**API_OPERATIONS, HEALTH_CHECK_PATH: "GET"}
"""Every path the route sends to a pod, with the one method it serves."""
HSTS = "max-age=31536000"
LOG_SAMPLE_RATE_SCALE = 1_000_000  # GCPBackendPolicy takes the sample rate in millionths


@dataclass(frozen=True)
class WeightedBackend:
    """The Service of one release track, receiving `weight` percent of the API traffic."""

    track: str
    service_name: pulumi.Input[str]
    port: int
    weight: int


@dataclass(frozen=True)
class MirrorBackend:
    """The shadow track's Service: gets a copy of every API request, its answers are dropped.

    GKE's `gke-l7-global-external-managed` class implements the Gateway API `RequestMirror`
    filter with the load balancer's request mirroring (URL map `requestMirrorPolicy`), which sends
    the copy without waiting for its answer: the client's answer is neither delayed nor changed.
    """

    track: str
    service_name: pulumi.Input[str]
    port: int


@dataclass(frozen=True)
class MultiCluster:
    """Several regions behind one multi-cluster Gateway, in the config cluster: each track's
    backend is the `ServiceImport` that its `ServiceExport`s in every cluster make.

    Spillover (GKE "Multi-cluster Gateways", capacity): a client goes to the closest region
    until its backends are at `maxRatePerEndpoint` or more than half of them are unhealthy;
    then the load balancer sends the excess to the next closest region.
    """

    max_rate_per_endpoint: int
    """Requests per second one pod takes before the load balancer spills to another region."""
    ingress_ready: Sequence[pulumi.Resource]
    """The multi-cluster ingress feature and its grants (`Fleet.ingress_ready`)."""
    exports: Sequence[pulumi.Resource]
    """The `ServiceExport`s whose imports the routes and policies name."""


@dataclass(frozen=True)
class EdgeGatewayArgs:
    """The stack's `edge` section (host names, backend timeout, draining, log sampling), and
    the names of what the Gateway ties together."""

    config: EdgeConfig
    gateway_name: str
    namespace: pulumi.Input[str]
    address_name: pulumi.Input[str]
    certificate_map_name: pulumi.Input[str]
    ssl_policy_name: str
    security_policy: gcp.compute.SecurityPolicy
    """Cloud Armor policy of every backend (`ArmorPolicy.policy`)."""
    backends: Sequence[WeightedBackend]
    labels: Mapping[str, str]
    mirror: MirrorBackend | None = None
    multi_cluster: MultiCluster | None = None

    @property
    def tracks(self) -> list[WeightedBackend | MirrorBackend]:
        """Every Service the load balancer sends to: each needs its backend and health policy."""
        return [*self.backends, *([self.mirror] if self.mirror else [])]


def _gateway_spec(args: EdgeGatewayArgs) -> dict[str, Any]:
    same_namespace = {"namespaces": {"from": "Same"}}
    return {
        "gatewayClassName": MULTI_CLUSTER_GATEWAY_CLASS if args.multi_cluster else GATEWAY_CLASS,
        "addresses": [{"type": "NamedAddress", "value": args.address_name}],
        "listeners": [
            # No `tls` block: GKE serves the certificate map named in the annotation.
            {
                "name": HTTPS_LISTENER,
                "protocol": "HTTPS",
                "port": 443,
                "allowedRoutes": same_namespace,
            },
            {
                "name": HTTP_LISTENER,
                "protocol": "HTTP",
                "port": 80,
                "allowedRoutes": same_namespace,
            },
        ],
    }


def _api_route_spec(args: EdgeGatewayArgs) -> dict[str, Any]:
    backend_refs = [
        {
            **_import_kind(args),
            "name": backend.service_name,
            "port": backend.port,
            "weight": backend.weight,
        }
        for backend in args.backends
    ]
    # Browsers and well-behaved clients never try plain HTTP again for this domain.
    hsts = {
        "type": "ResponseHeaderModifier",
        "responseHeaderModifier": {"set": [{"name": "Strict-Transport-Security", "value": HSTS}]},
    }
    # The shadow gets a copy of every API request (not of the uptime check's /readyz).
    mirror = (
        [
            {
                "type": "RequestMirror",
                "requestMirror": {
                    "backendRef": {
                        **_import_kind(args),
                        "name": args.mirror.service_name,
                        "port": args.mirror.port,
                    }
                },
            }
        ]
        if args.mirror
        else []
    )
    return {
        "parentRefs": [{"name": args.gateway_name, "sectionName": HTTPS_LISTENER}],
        "hostnames": list(args.config.domains),
        "rules": [
            {
                "matches": [{"path": {"type": "Exact", "value": path}} for path in API_OPERATIONS],
                "filters": [hsts, *mirror],
                "backendRefs": backend_refs,
            },
            # For the external uptime check only: readiness says nothing but "ready" or not.
            {
                "matches": [{"path": {"type": "Exact", "value": HEALTH_CHECK_PATH}}],
                "filters": [hsts],
                "backendRefs": backend_refs,
            },
        ],
    }


def _redirect_route_spec(args: EdgeGatewayArgs) -> dict[str, Any]:
    return {
        "parentRefs": [{"name": args.gateway_name, "sectionName": HTTP_LISTENER}],
        "hostnames": list(args.config.domains),
        "rules": [
            {
                "filters": [
                    {
                        "type": "RequestRedirect",
                        "requestRedirect": {"scheme": "https", "statusCode": 301},
                    }
                ]
            }
        ],
    }


def _import_kind(args: EdgeGatewayArgs) -> dict[str, str]:
    """A backend reference's kind: a Service by default, the `ServiceImport` across clusters."""
    return {"group": MCS_API_GROUP, "kind": "ServiceImport"} if args.multi_cluster else {}


def _service_ref(args: EdgeGatewayArgs, service_name: pulumi.Input[str]) -> dict[str, Any]:
    return {"group": "", "kind": "Service", **_import_kind(args), "name": service_name}


def _backend_policy_spec(args: EdgeGatewayArgs, service_name: pulumi.Input[str]) -> dict[str, Any]:
    spillover = (
        {"maxRatePerEndpoint": args.multi_cluster.max_rate_per_endpoint}
        if args.multi_cluster
        else {}
    )
    return {
        "targetRef": _service_ref(args, service_name),
        "default": {
            **spillover,
            "securityPolicy": args.security_policy.name,
            "logging": {
                "enabled": True,
                "sampleRate": round(args.config.log_sample_rate * LOG_SAMPLE_RATE_SCALE),
            },
            "timeoutSec": args.config.backend_timeout_sec,
            "connectionDraining": {"drainingTimeoutSec": args.config.connection_draining_sec},
        },
    }


def _health_check_spec(args: EdgeGatewayArgs, service_name: pulumi.Input[str]) -> dict[str, Any]:
    return {
        "targetRef": _service_ref(args, service_name),
        "default": {
            "checkIntervalSec": 5,
            "timeoutSec": 3,
            "healthyThreshold": 1,
            "unhealthyThreshold": 3,
            "logConfig": {"enabled": True},
            # Port omitted: the load balancer probes each pod on its serving port (NEG endpoint).
            "config": {"type": "HTTP", "httpHealthCheck": {"requestPath": HEALTH_CHECK_PATH}},
        },
    }


class EdgeGateway(pulumi.ComponentResource):
    """SSL policy, Gateway, HTTPS route, HTTP redirect route and the GKE policies."""

    gateway_name: pulumi.Output[str]
    ssl_policy_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: EdgeGatewayArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("moderation:edge:EdgeGateway", name, None, opts)
        self._args = args
        ssl_policy = gcp.compute.SSLPolicy(
            f"{name}-ssl",
            name=args.ssl_policy_name,
            description="TLS 1.2+ with the MODERN cipher profile",
            min_tls_version="TLS_1_2",
            profile="MODERN",
            opts=pulumi.ResourceOptions(parent=self),
        )
        # The load balancer GKE builds for the Gateway uses every GCP resource named here and in
        # the policies attached to it: the Gateway waits for them, so that destroy (or a rename)
        # deletes it, and with it the load balancer, before them (Compute refuses to delete a
        # policy in use). The address and certificate map come in as their Outputs.
        gateway = self._object(
            f"{name}-gateway",
            GATEWAY_API,
            "Gateway",
            args.gateway_name,
            _gateway_spec(args),
            annotations={CERTMAP_ANNOTATION: args.certificate_map_name},
            depends_on=[
                ssl_policy,
                args.security_policy,
                *(args.multi_cluster.ingress_ready if args.multi_cluster else []),
            ],
        )
        after_gateway = [gateway]
        # Routes and policies name the imports, which exist once their services are exported.
        after_exports = list(args.multi_cluster.exports) if args.multi_cluster else []
        self._object(
            f"{name}-tls-policy",
            GKE_POLICY_API,
            "GCPGatewayPolicy",
            f"{args.gateway_name}-tls",
            {
                "targetRef": {
                    "group": "gateway.networking.k8s.io",
                    "kind": "Gateway",
                    "name": args.gateway_name,
                },
                "default": {"sslPolicy": ssl_policy.name},
            },
            depends_on=after_gateway,
        )
        self._object(
            f"{name}-api-route",
            GATEWAY_API,
            "HTTPRoute",
            f"{args.gateway_name}-api",
            _api_route_spec(args),
            depends_on=[*after_gateway, *after_exports],
        )
        self._object(
            f"{name}-redirect-route",
            GATEWAY_API,
            "HTTPRoute",
            f"{args.gateway_name}-https-redirect",
            _redirect_route_spec(args),
            depends_on=after_gateway,
        )
        for backend in args.tracks:
            self._object(
                f"{name}-backend-policy-{backend.track}",
                GKE_POLICY_API,
                "GCPBackendPolicy",
                f"{args.gateway_name}-{backend.track}",
                _backend_policy_spec(args, backend.service_name),
                depends_on=after_exports,
            )
            self._object(
                f"{name}-health-check-{backend.track}",
                GKE_POLICY_API,
                "HealthCheckPolicy",
                f"{args.gateway_name}-{backend.track}",
                _health_check_spec(args, backend.service_name),
                depends_on=after_exports,
            )

        self.gateway_name = pulumi.Output.from_input(args.gateway_name)
        self.ssl_policy_name = ssl_policy.name
        self.register_outputs(
            {"gateway_name": self.gateway_name, "ssl_policy_name": self.ssl_policy_name}
        )

    def _object(
        self,
        logical_name: str,
        api_version: str,
        kind: str,
        object_name: str,
        spec: Mapping[str, Any],
        annotations: Mapping[str, pulumi.Input[str]] | None = None,
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> k8s.apiextensions.CustomResource:
        """A namespaced custom resource (the Gateway API kinds are not typed in the SDK)."""
        return k8s.apiextensions.CustomResource(
            logical_name,
            api_version=api_version,
            kind=kind,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=object_name,
                namespace=self._args.namespace,
                labels=dict(self._args.labels),
                annotations=dict(annotations) if annotations else None,
            ),
            spec=dict(spec),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(depends_on)),
        )
