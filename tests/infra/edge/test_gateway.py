"""The public edge under mocks: HTTPS only, TLS policy, Armor and logging, /readyz checks."""

from __future__ import annotations

from typing import Any

from tests.infra.plans import Plan, stack_config

GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
HTTP_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
BACKEND_POLICY = "kubernetes:networking.gke.io/v1:GCPBackendPolicy"
HEALTH_CHECK_POLICY = "kubernetes:networking.gke.io/v1:HealthCheckPolicy"
GATEWAY_POLICY = "kubernetes:networking.gke.io/v1:GCPGatewayPolicy"


def _multi_cluster(plan: Plan) -> bool:
    """A stack of several regions is served by GKE's multi-cluster Gateway, one region by the
    single-cluster one (docs/deploy.md "Serving from several regions")."""
    return len(plan.regions) > 1


def _backend_kind(plan: Plan) -> tuple[str, str]:
    """(group, kind) of what routes and policies name: each cluster's Service, or with several
    regions the `ServiceImport` that the multi-cluster services feature makes of the exports."""
    return ("net.gke.io", "ServiceImport") if _multi_cluster(plan) else ("", "Service")


def _edge(plan: Plan) -> dict[str, Any]:
    return stack_config(plan.stack)["moderation:edge"]


def _routes(plan: Plan) -> list[dict[str, Any]]:
    return [route["inputs"] for route in plan.of_type(HTTP_ROUTE)]


def _listener_sections(route: dict[str, Any]) -> set[str]:
    return {parent["sectionName"] for parent in route["spec"]["parentRefs"]}


def _backend_routes(plan: Plan) -> list[dict[str, Any]]:
    return [
        route
        for route in _routes(plan)
        if any(rule.get("backendRefs") for rule in route["spec"]["rules"])
    ]


def _backend_services(plan: Plan) -> set[str]:
    backends = [
        backend
        for route in _backend_routes(plan)
        for rule in route["spec"]["rules"]
        for backend in rule["backendRefs"]
    ]
    for backend in backends:
        assert (backend.get("group", ""), backend.get("kind", "Service")) == _backend_kind(plan)
    return {backend["name"] for backend in backends}


def test_gateway_is_the_global_external_one_on_the_static_ip_with_the_certificate_map(
    plan: Plan,
) -> None:
    """One Gateway, in the stack's own region (the config cluster, with several regions)."""
    gateway_resource = plan.one(GATEWAY)
    assert plan.region_of(gateway_resource) == plan.regions[0]
    gateway = gateway_resource["inputs"]
    address = plan.one("gcp:compute/globalAddress:GlobalAddress")["inputs"]
    certificate_map = plan.one("gcp:certificatemanager/certificateMap:CertificateMap")["inputs"]
    gateway_class = "gke-l7-global-external-managed"
    if _multi_cluster(plan):
        gateway_class += "-mc"
    assert gateway["spec"]["gatewayClassName"] == gateway_class
    assert gateway["spec"]["addresses"] == [{"type": "NamedAddress", "value": address["name"]}]
    assert address["addressType"] == "EXTERNAL"
    annotations = gateway["metadata"]["annotations"]
    assert annotations["networking.gke.io/certmap"] == certificate_map["name"]


def test_managed_certificate_covers_every_domain_through_dns_authorization(plan: Plan) -> None:
    domains = _edge(plan)["domains"]
    certificate = plan.one("gcp:certificatemanager/certificate:Certificate")["inputs"]
    authorizations = plan.of_type("gcp:certificatemanager/dnsAuthorization:DnsAuthorization")
    entries = plan.of_type("gcp:certificatemanager/certificateMapEntry:CertificateMapEntry")
    assert certificate["managed"]["domains"] == domains
    assert sorted(a["inputs"]["domain"] for a in authorizations) == sorted(domains)
    assert len(certificate["managed"]["dnsAuthorizations"]) == len(domains)
    assert sorted(e["inputs"]["hostname"] for e in entries) == sorted(domains)


def test_plain_http_only_redirects_to_https(plan: Plan) -> None:
    listeners = {
        listener["name"]: (listener["protocol"], listener["port"])
        for listener in plan.one(GATEWAY)["inputs"]["spec"]["listeners"]
    }
    assert listeners == {"https": ("HTTPS", 443), "http": ("HTTP", 80)}
    routes = _routes(plan)
    # A parentRef without a section would attach the route to every listener, HTTP included.
    assert all(parent.get("sectionName") for r in routes for parent in r["spec"]["parentRefs"])
    http_routes = [route for route in routes if "http" in _listener_sections(route)]
    assert http_routes, "nothing answers on port 80: clients typing http:// get no redirect"
    for route in http_routes:
        for rule in route["spec"]["rules"]:
            assert "backendRefs" not in rule
            assert rule["filters"] == [
                {
                    "type": "RequestRedirect",
                    "requestRedirect": {"scheme": "https", "statusCode": 301},
                }
            ]
    backend_routes = _backend_routes(plan)
    assert backend_routes
    assert all(_listener_sections(route) == {"https"} for route in backend_routes)
    hsts = {
        "type": "ResponseHeaderModifier",
        "responseHeaderModifier": {
            "set": [{"name": "Strict-Transport-Security", "value": "max-age=31536000"}]
        },
    }
    assert all(rule["filters"] == [hsts] for r in backend_routes for rule in r["spec"]["rules"])


def test_only_the_api_operations_and_readiness_reach_the_service(plan: Plan) -> None:
    """Exact paths: a client-chosen path never reaches a pod (nor its logs and metrics). No
    method match: GKE's class does not program it (Cloud Armor enforces methods instead)."""
    exposed = {
        (match["path"]["type"], match["path"]["value"], match.get("method"))
        for route in _backend_routes(plan)
        for rule in route["spec"]["rules"]
        for match in rule["matches"]
    }
    assert exposed == {
        ("Exact", "/v1/moderations", None),
        ("Exact", "/v1/models", None),
        ("Exact", "/readyz", None),
    }
    for route in _routes(plan):
        assert route["spec"]["hostnames"] == _edge(plan)["domains"]


def test_tls_is_at_least_1_2_with_the_modern_profile(plan: Plan) -> None:
    ssl_policy = plan.one("gcp:compute/sSLPolicy:SSLPolicy")["inputs"]
    gateway = plan.one(GATEWAY)["inputs"]
    gateway_policy = plan.one(GATEWAY_POLICY)["inputs"]
    assert (ssl_policy["minTlsVersion"], ssl_policy["profile"]) == ("TLS_1_2", "MODERN")
    assert gateway_policy["spec"]["targetRef"] == {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "name": gateway["metadata"]["name"],
    }
    assert gateway_policy["spec"]["default"]["sslPolicy"] == ssl_policy["name"]


def _policies_by_service(plan: Plan, resource_type: str) -> dict[str, dict[str, Any]]:
    policies: dict[str, dict[str, Any]] = {}
    for policy in plan.of_type(resource_type):
        target = policy["inputs"]["spec"]["targetRef"]
        assert (target["group"], target["kind"]) == _backend_kind(plan)
        policies[target["name"]] = policy["inputs"]["spec"]["default"]
    return policies


def test_every_backend_has_armor_request_logging_timeout_and_draining(plan: Plan) -> None:
    edge = _edge(plan)
    armor = plan.one("gcp:compute/securityPolicy:SecurityPolicy")["inputs"]
    policies = _policies_by_service(plan, BACKEND_POLICY)
    assert set(policies) == _backend_services(plan)
    for policy in policies.values():
        assert policy["securityPolicy"] == armor["name"]
        assert policy["logging"] == {
            "enabled": True,
            "sampleRate": round(edge["logSampleRate"] * 1_000_000),
        }
        assert policy["timeoutSec"] == edge["backendTimeoutSec"]
        assert policy["connectionDraining"] == {"drainingTimeoutSec": edge["connectionDrainingSec"]}


def test_every_backend_is_health_checked_on_readyz(plan: Plan) -> None:
    checks = _policies_by_service(plan, HEALTH_CHECK_POLICY)
    assert set(checks) == _backend_services(plan)
    for check in checks.values():
        assert check["config"] == {"type": "HTTP", "httpHealthCheck": {"requestPath": "/readyz"}}


def test_dns_records_exist_exactly_when_a_managed_zone_is_configured(plan: Plan) -> None:
    edge = _edge(plan)
    records = {
        (r["inputs"]["type"], r["inputs"]["name"]): r["inputs"]
        for r in plan.of_type("gcp:dns/recordSet:RecordSet")
    }
    zone = edge.get("dnsManagedZone")
    if zone is None:
        assert records == {}
        return
    address = plan.outputs["edgeIp"]
    for domain in edge["domains"]:
        assert records[("A", f"{domain}.")]["rrdatas"] == [address]
        assert records[("CNAME", f"_acme-challenge.{domain}.")]["rrdatas"]
    assert {record["managedZone"] for record in records.values()} == {zone}
