"""Day two: a config change that replaces a named resource must not collide with the old one
(Pulumi creates the replacement first), and `pulumi destroy` of dev must be able to finish."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from infra.cluster import DEFAULT_POOL_ONLY
from infra.config import ConfigError, parse_stack_config
from tests.infra.plans import Plan, stack_config

# Inputs the provider cannot update in place (a change replaces the resource), per type.
REPLACED_ON_CHANGE = {
    "gcp:certificatemanager/certificate:Certificate": ("managed", "scope"),
    "gcp:certificatemanager/dnsAuthorization:DnsAuthorization": ("domain",),
    "gcp:certificatemanager/certificateMapEntry:CertificateMapEntry": ("hostname", "map"),
    "gcp:dns/recordSet:RecordSet": ("managedZone", "name"),
    "gcp:compute/globalAddress:GlobalAddress": ("addressType", "ipVersion"),
}


def _with_another_domain(config: dict[str, Any]) -> None:
    edge = config["moderation:edge"]
    edge["domains"] = [*edge["domains"], "api2." + edge["domains"][0].split(".", 1)[1]]


@pytest.fixture(scope="module", params=["dev", "prod"])
def domain_change(request: pytest.FixtureRequest, plans: dict, plan_variant: Callable) -> tuple:
    return plans[request.param], plan_variant(request.param, _with_another_domain)


def test_a_replaced_resource_gets_a_new_name(domain_change: tuple[Plan, Plan]) -> None:
    before, after = domain_change
    old = {Plan.address(r): r["inputs"] for r in before["resources"]}
    replaced = 0
    for resource in after["resources"]:
        fields = REPLACED_ON_CHANGE.get(resource["type"], ())
        previous = old.get(Plan.address(resource))
        if previous is None or "name" not in resource["inputs"]:
            continue
        if any(previous.get(f) != resource["inputs"].get(f) for f in fields):
            replaced += 1
            assert resource["inputs"]["name"] != previous["name"], Plan.address(resource)
    assert replaced >= 1  # the certificate: its `managed` domains changed


def test_the_new_domain_gets_its_own_authorization_and_map_entry(
    domain_change: tuple[Plan, Plan],
) -> None:
    before, after = domain_change
    for resource_type in (
        "gcp:certificatemanager/dnsAuthorization:DnsAuthorization",
        "gcp:certificatemanager/certificateMapEntry:CertificateMapEntry",
    ):
        assert len(after.of_type(resource_type)) == len(before.of_type(resource_type)) + 1
        names = [r["inputs"]["name"] for r in after.of_type(resource_type)]
        assert len(set(names)) == len(names)


def test_dev_keeps_nothing_that_would_stop_destroy(plans: dict[str, Plan]) -> None:
    """Objects under retention cannot be deleted, not even by force_destroy; deletion protection
    and `protect` refuse outright."""
    dev = plans["dev"]
    for resource in dev["resources"]:
        inputs, where = resource["inputs"], Plan.address(resource)
        assert inputs.get("deletionProtection") is not True, where
        assert dev.options[where]["protect"] is False, where
        if resource["type"] == "gcp:storage/bucket:Bucket":
            assert inputs["forceDestroy"] is True, where
            assert "retentionPolicy" not in inputs, where
        if resource["type"] == "gcp:bigquery/dataset:Dataset":
            assert inputs["deleteContentsOnDestroy"] is True, where


def test_prod_keeps_its_data_and_cluster(plans: dict[str, Plan]) -> None:
    prod = plans["prod"]
    for region, cluster in prod.each_region("gcp:container/cluster:Cluster").items():
        assert cluster["inputs"]["deletionProtection"] is True, region
    bucket = prod.one("gcp:storage/bucket:Bucket")["inputs"]
    assert bucket["forceDestroy"] is False
    assert bucket["retentionPolicy"]["retentionPeriod"] > 0


def test_dev_cannot_lock_its_archive() -> None:
    config = stack_config("dev")
    config["moderation:observability"]["logSinks"]["archiveLockRetention"] = True
    with pytest.raises(ConfigError, match=r"logSinks\.archiveLockRetention"):
        parse_stack_config(config)


def test_the_removed_default_pool_is_not_diffed_or_replaced(plan: Plan) -> None:
    """Its settings only shape the pool GKE deletes right after creating the cluster."""
    for region, cluster in plan.each_region("gcp:container/cluster:Cluster").items():
        assert cluster["inputs"]["removeDefaultNodePool"] is True, region
        ignored = plan.options[Plan.address(cluster)]["ignoreChanges"]
        assert set(DEFAULT_POOL_ONLY) <= set(ignored), region
        assert set(DEFAULT_POOL_ONLY) <= set(cluster["inputs"]), region
        assert "nodeConfig" not in cluster["inputs"], (
            region
        )  # deprecated by the API, replaces the cluster
