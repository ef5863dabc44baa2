"""The control plane endpoint, decided against the API and the provider.

GKE's API deprecates where the IP endpoint's settings live (`masterAuthorizedNetworksConfig`,
`privateClusterConfig.enablePrivateEndpoint`, `...masterGlobalAccessConfig`) in favour of fields
under `controlPlaneEndpointsConfig.ipEndpointsConfig`; the discovery document says which. The
kit keeps the IP endpoint behind authorized networks (the network allow-list is a design
decision: docs/deploy.md) and DNS-based access closed, and writes that down in the cluster's
inputs. The deprecated inputs stay only while pulumi-gcp offers no replacement input: once it
does, the test below fails and the program moves to it.
"""

from __future__ import annotations

import re

import pulumi_gcp as gcp
import pytest

from tests.infra.google_discovery import document
from tests.infra.plans import Plan
from tests.infra.test_google_api_definitions import PROVIDER_OWNED

CLUSTER = "gcp:container/cluster:Cluster"
REPLACEMENT = re.compile(r"Use (?:ControlPlaneEndpointsConfig\.)?IPEndpointsConfig\.(\w+) instead")


def _deprecated_field(problem: str) -> str:
    return problem.split(":")[0].split(".")[-1]


def _api_replacement(field: str) -> str | None:
    """The field the API names as the replacement of a deprecated cluster field."""
    schemas = document("container.v1")["schemas"]
    for schema in ("Cluster", "PrivateClusterConfig"):
        prop = schemas[schema]["properties"].get(field)
        if prop and (found := REPLACEMENT.search(prop.get("description", ""))):
            return found.group(1)
    return None


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@pytest.mark.parametrize(
    "problem",
    [p for (t, p) in PROVIDER_OWNED if t == CLUSTER and "enablePrivateNodes" not in p],
)
def test_each_kept_deprecated_input_has_no_replacement_in_the_provider(problem: str) -> None:
    replacement = _api_replacement(_deprecated_field(problem))
    assert replacement, problem
    provider_inputs = gcp.container.ClusterControlPlaneEndpointsConfigIpEndpointsConfigArgs
    assert not hasattr(provider_inputs, _snake(replacement)), (
        f"pulumi-gcp now has ipEndpointsConfig.{replacement}: move {problem.split(':')[0]} there"
    )


def test_the_endpoint_decision_is_explicit(plan: Plan) -> None:
    for region, cluster in plan.each_region(CLUSTER).items():
        endpoints = cluster["inputs"]["controlPlaneEndpointsConfig"]
        assert endpoints["ipEndpointsConfig"] == {"enabled": True}, region
        assert endpoints["dnsEndpointConfig"]["allowExternalTraffic"] is False, region
        networks = cluster["inputs"]["masterAuthorizedNetworksConfig"]
        assert networks["cidrBlocks"], region
        assert all(block["cidrBlock"] != "0.0.0.0/0" for block in networks["cidrBlocks"]), region
