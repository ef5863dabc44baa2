"""Which Gateway API features a Gateway or HTTPRoute uses, by the feature names of the conformance
suite (kubernetes-sigs/gateway-api `pkg/features/gateway.go`, `pkg/features/httproute.go`), so
that they can be held against the conformance report an implementation publishes.

Every field the kit sets maps to `CORE`, to an extended feature, or to `IMPLEMENTATION_SPECIFIC`
(the API's own "Support:" notes in `apis/v1/httproute_types.go`, `gateway_types.go`,
`shared_types.go`); a field missing from the tables is reported as unmapped rather than assumed
to be core, so a new field is classified before it can pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

CORE = "Core"
IMPLEMENTATION_SPECIFIC = "Implementation-specific"
UNMAPPED = "unmapped"
REPORT = Path(__file__).parent / "data" / "gke-gateway-v1.3.0-managed-gxlb-report.yaml"
REPORT_GATEWAY_CLASS = "gke-l7-global-external-managed"
"""The class GKE ran that report against (its README.md: "Mode")."""

# Field path ("[]" for a list item) -> feature.
GATEWAY_FIELDS: dict[str, str] = {
    "gatewayClassName": CORE,
    "listeners[].name": CORE,
    "listeners[].protocol": CORE,
    "listeners[].port": CORE,
    "listeners[].allowedRoutes.namespaces.from": CORE,
    "listeners[].allowedRoutes.kinds[].group": CORE,
    "listeners[].allowedRoutes.kinds[].kind": CORE,
    "listeners[].tls.mode": CORE,
    "listeners[].tls.certificateRefs[].name": CORE,
    # Route and listener hostnames intersect: a Core test GKE's report skipped.
    "listeners[].hostname": "HTTPRouteHostnameIntersection",
    "infrastructure.labels": "GatewayInfrastructurePropagation",
    "infrastructure.annotations": "GatewayInfrastructurePropagation",
}
HTTPROUTE_FIELDS: dict[str, str] = {
    "parentRefs[].group": CORE,
    "parentRefs[].kind": CORE,
    "parentRefs[].namespace": CORE,
    "parentRefs[].name": CORE,
    "parentRefs[].sectionName": CORE,
    "parentRefs[].port": "HTTPRouteParentRefPort",
    "hostnames[]": CORE,
    "rules[]": CORE,  # a rule without matches or backends (only a redirect filter)
    "rules[].name": "HTTPRouteNamedRouteRule",
    "rules[].matches[].path.type": CORE,
    "rules[].matches[].path.value": CORE,
    "rules[].matches[].headers[].type": CORE,
    "rules[].matches[].headers[].name": CORE,
    "rules[].matches[].headers[].value": CORE,
    "rules[].matches[].method": "HTTPRouteMethodMatching",
    "rules[].matches[].queryParams[].type": "HTTPRouteQueryParamMatching",
    "rules[].matches[].queryParams[].name": "HTTPRouteQueryParamMatching",
    "rules[].matches[].queryParams[].value": "HTTPRouteQueryParamMatching",
    "rules[].backendRefs[].group": CORE,
    "rules[].backendRefs[].kind": CORE,
    "rules[].backendRefs[].namespace": CORE,
    "rules[].backendRefs[].name": CORE,
    "rules[].backendRefs[].port": CORE,
    "rules[].backendRefs[].weight": CORE,
    "rules[].timeouts.request": "HTTPRouteRequestTimeout",
    "rules[].timeouts.backendRequest": "HTTPRouteBackendTimeout",
    "rules[].retry": "HTTPRouteRetry",
}
# Filter type -> feature of the filter itself, and of its fields where they differ.
ROUTE_FILTERS: dict[str, str] = {
    "RequestHeaderModifier": CORE,
    "ResponseHeaderModifier": "HTTPRouteResponseHeaderModification",
    "RequestRedirect": CORE,
    "URLRewrite": CORE,
    "RequestMirror": "HTTPRouteRequestMirror",
    "CORS": "HTTPRouteCORS",
    "ExtensionRef": IMPLEMENTATION_SPECIFIC,
}
FILTER_FIELDS: dict[str, str] = {
    "requestHeaderModifier": CORE,
    "responseHeaderModifier": "HTTPRouteResponseHeaderModification",
    "requestRedirect.hostname": CORE,
    "requestRedirect.statusCode": CORE,
    "requestRedirect.scheme": "HTTPRouteSchemeRedirect",
    "requestRedirect.path": "HTTPRoutePathRedirect",
    "requestRedirect.port": "HTTPRoutePortRedirect",
    "urlRewrite.hostname": "HTTPRouteHostRewrite",
    "urlRewrite.path": "HTTPRoutePathRewrite",
    "requestMirror.backendRef": "HTTPRouteRequestMirror",
    "requestMirror.percent": "HTTPRouteRequestPercentageMirror",
    "requestMirror.fraction": "HTTPRouteRequestPercentageMirror",
    "cors": "HTTPRouteCORS",
    "extensionRef": IMPLEMENTATION_SPECIFIC,
}
# The same filters on a backendRef instead of a rule.
BACKEND_FILTERS: dict[str, str] = {
    "RequestHeaderModifier": "HTTPRouteBackendRequestHeaderModification",
    "RequestRedirect": "HTTPRouteBackendRequestRedirect",
    "URLRewrite": "HTTPRouteBackendURLRewrite",
}
CORE_REDIRECT_CODES = {301, 302}
CORE_PATH_MATCHES = {"Exact", "PathPrefix"}
# `NamedAddress` names a cloud resource such as a static IP ("Support: Implementation-specific",
# `shared_types.go`); GKE documents it for a reserved global address. `IPAddress` and `Hostname`
# request an address the implementation must allocate: GatewayStaticAddresses.
STATIC_ADDRESS_TYPES = {"IPAddress", "Hostname"}
# Service `appProtocol` values a backend protocol feature stands for.
APP_PROTOCOLS = {
    "kubernetes.io/h2c": "HTTPRouteBackendProtocolH2C",
    "kubernetes.io/ws": "HTTPRouteBackendProtocolWebSocket",
}


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of every leaf, lists as `[]`; a mapping left empty is a leaf too."""
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list) and value:
        for item in value:
            yield from _leaves(item, f"{path}[]")
    else:
        yield path, value


def _by_table(table: Mapping[str, str], field: str) -> str:
    """The feature of `field` or of its nearest listed ancestor object (`rules[].retry` covers
    `rules[].retry.attempts`); a list item entry (`rules[]`) covers only itself."""
    path = field
    while path:
        if path in table and (path == field or not path.endswith("[]")):
            return table[path]
        if path.endswith("[]"):
            path = path.removesuffix("[]")
        else:
            path = path.rsplit(".", 1)[0] if "." in path else ""
    return UNMAPPED


def _filter_features(where: str, route_filter: Mapping[str, Any], backend: bool) -> dict:
    kind = route_filter.get("type")
    feature = (BACKEND_FILTERS if backend else ROUTE_FILTERS).get(kind, UNMAPPED)
    used = {f"{where}.type={kind}": feature}
    for path, value in _leaves({k: v for k, v in route_filter.items() if k != "type"}):
        used[f"{where}.{path}"] = feature if backend else _by_table(FILTER_FIELDS, path)
        if path == "requestRedirect.statusCode" and value not in CORE_REDIRECT_CODES:
            used[f"{where}.{path}={value}"] = f"HTTPRoute{value}RedirectStatusCode"
    return used


def gateway_features(spec: Mapping[str, Any]) -> dict[str, str]:
    """Field path -> feature, for a Gateway spec."""
    used: dict[str, str] = {}
    for index, address in enumerate(spec.get("addresses", [])):
        where = f"addresses[{index}]"
        if not address.get("value"):
            used[where] = "GatewayAddressEmpty"
        elif address.get("type", "IPAddress") in STATIC_ADDRESS_TYPES:
            used[where] = "GatewayStaticAddresses"
        else:
            used[where] = IMPLEMENTATION_SPECIFIC
    for path, value in _leaves({k: v for k, v in spec.items() if k != "addresses"}):
        used[path] = _by_table(GATEWAY_FIELDS, path)
        if path == "listeners[].port" and value == 8080:
            used[f"{path}=8080"] = "GatewayPort8080"
    return used


def httproute_features(
    spec: Mapping[str, Any], services: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, str]:
    """Field path -> feature, for an HTTPRoute spec; `services` (name -> Service spec) adds the
    backend protocol features of the Services it routes to."""
    used: dict[str, str] = {}
    mirrors_per_rule: list[int] = []
    for index, rule in enumerate(spec.get("rules", [])):
        filters = rule.get("filters", [])
        mirrors_per_rule.append(sum(f.get("type") == "RequestMirror" for f in filters))
        for position, route_filter in enumerate(filters):
            where = f"rules[{index}].filters[{position}]"
            used |= _filter_features(where, route_filter, backend=False)
        for ref_index, ref in enumerate(rule.get("backendRefs", [])):
            for position, route_filter in enumerate(ref.get("filters", [])):
                where = f"rules[{index}].backendRefs[{ref_index}].filters[{position}]"
                used |= _filter_features(where, route_filter, backend=True)
            port = next((p for p in (services or {}).get(ref["name"], {}).get("ports", [])), None)
            if port and port.get("appProtocol") in APP_PROTOCOLS:
                used[f"rules[{index}].backendRefs[{ref_index}]"] = APP_PROTOCOLS[
                    port["appProtocol"]
                ]
        for match_index, match in enumerate(rule.get("matches", [])):
            path_type = match.get("path", {}).get("type", "PathPrefix")
            if path_type not in CORE_PATH_MATCHES:
                used[f"rules[{index}].matches[{match_index}].path.type={path_type}"] = (
                    IMPLEMENTATION_SPECIFIC
                )
    if any(count > 1 for count in mirrors_per_rule):
        used["rules[].filters[type=RequestMirror]"] = "HTTPRouteRequestMultipleMirrors"
    without_filters = {
        **spec,
        "rules": [
            {key: _without_filters(value) for key, value in rule.items() if key != "filters"}
            for rule in spec.get("rules", [])
        ],
    }
    for path, _ in _leaves(without_filters):
        used.setdefault(path, _by_table(HTTPROUTE_FIELDS, path))
    return used


def _without_filters(value: Any) -> Any:
    """A rule's field with the filters of its backendRefs taken out (classified above)."""
    if isinstance(value, list):
        return [
            {k: v for k, v in item.items() if k != "filters"} if isinstance(item, dict) else item
            for item in value
        ]
    return value


def report() -> dict[str, Any]:
    return yaml.safe_load(REPORT.read_text())


def unsupported(features: Mapping[str, str], conformance: Mapping[str, Any]) -> dict[str, str]:
    """Fields whose feature the report does not claim: listed as unsupported, a Core test it
    skipped, unmapped, or an extended feature it does not list as supported."""
    (profile,) = [p for p in conformance["profiles"] if p["name"] == "GATEWAY-HTTP"]
    supported = {CORE, IMPLEMENTATION_SPECIFIC, *profile["extended"]["supportedFeatures"]}
    return {path: feature for path, feature in features.items() if feature not in supported}
