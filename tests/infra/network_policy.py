"""What a Kubernetes NetworkPolicy lets through, evaluated as the API defines it, so that tests
compare real peers (addresses, namespaces, pods and ports) rather than the policy's text.

A rule admits traffic when one of its peers matches (no `to`/`from`: everyone) and one of its
ports matches (no `ports`: every port). Peers: an `ipBlock` (CIDR minus `except`), a
`namespaceSelector` (pods in matching namespaces, narrowed by a `podSelector` if both are set),
or a lone `podSelector` (pods of the policy's own namespace).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Peer:
    """The other end: an address, and when it is a pod, its namespace's and its own labels."""

    ip: str
    port: int
    protocol: str = "TCP"
    namespace_labels: Mapping[str, str] | None = None  # None: not a pod (node, host, internet)
    pod_labels: Mapping[str, str] = field(default_factory=dict)


def pod(namespace: str, port: int, protocol: str = "TCP", **labels: str) -> Peer:
    """A pod in `namespace` (labelled as Kubernetes labels namespaces), at a pod address."""
    return Peer("10.20.0.7", port, protocol, {"kubernetes.io/metadata.name": namespace}, labels)


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"unsupported selector {selector}"
    return selector.get("matchLabels", {}).items() <= labels.items()


def _peer_matches(rule_peer: Mapping[str, Any], peer: Peer, own_namespace: str) -> bool:
    if "ipBlock" in rule_peer:
        block = rule_peer["ipBlock"]
        address = ipaddress.ip_address(peer.ip)
        inside = address in ipaddress.ip_network(block["cidr"])
        return inside and not any(
            address in ipaddress.ip_network(c) for c in block.get("except", [])
        )
    if peer.namespace_labels is None:
        return False
    if "namespaceSelector" in rule_peer:
        if not _selects(rule_peer["namespaceSelector"], peer.namespace_labels):
            return False
    elif peer.namespace_labels.get("kubernetes.io/metadata.name") != own_namespace:
        return False
    return _selects(rule_peer.get("podSelector", {}), peer.pod_labels)


def _port_matches(ports: list[Mapping[str, Any]] | None, peer: Peer) -> bool:
    if not ports:
        return True
    return any(
        p.get("protocol", "TCP") == peer.protocol and p.get("port") in (None, peer.port)
        for p in ports
    )


def allows(policy: Mapping[str, Any], direction: Literal["ingress", "egress"], peer: Peer) -> bool:
    """Whether `policy` (a NetworkPolicy object) admits traffic to/from `peer`."""
    spec, namespace = policy["spec"], policy["metadata"]["namespace"]
    kind = direction.capitalize()
    if kind not in spec.get("policyTypes", ["Ingress"]):
        return True
    peers_key = "from" if direction == "ingress" else "to"
    return any(
        (not rule.get(peers_key) or any(_peer_matches(p, peer, namespace) for p in rule[peers_key]))
        and _port_matches(rule.get("ports"), peer)
        for rule in spec.get(direction, [])
    )
