"""Eventual consistency: what Google's APIs accept only some time after it was created.

- A log-based metric becomes visible to Cloud Monitoring up to 10 minutes after it is created;
  until then an alert policy (or SLO, dashboard) that reads it is refused with 404 "Cannot find
  metric(s) ... could take up to 10 minutes" (hashicorp/terraform-provider-google#11102, open).
  `depends_on` orders the calls but does not wait: a reader must wait for a `time` Sleep that
  itself waits for the metric.
- An IAM grant takes effect some time after the call that creates it returns (Google Cloud IAM,
  "Access change propagation": typically 2 minutes, 7 or more at times). A GCP resource that
  relies on a fresh grant (the cluster on its KMS key's grant to the GKE service agent, the node
  pools on their service account's roles) must wait for a Sleep that waits for the grant; a
  direct dependency on a grant is a wait of zero. Kubernetes objects are exempt: the kubelet and
  controllers retry (a pod's secret volume mount, the Workload Identity token exchange) until
  the grant works, and the Deployment's await covers that time.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from tests.infra.plans import Plan

SLEEP = "time:index/sleep:Sleep"
LOG_METRIC = "gcp:logging/metric:Metric"
GRANT = re.compile(r":[A-Za-z]*I[Aa][Mm](Member|Binding)$")
# Who retries on their own until a grant works (see above).
RETRIES_ON_ITS_OWN = ("kubernetes:",)
NOT_A_CLOUD_CALL = ("moderation:", "pulumi:providers:", SLEEP)


def _address_map(plan: Plan) -> dict[str, dict[str, Any]]:
    return {Plan.address(r): r for r in plan["resources"]}


def _sleeps_waited_for(plan: Plan, resource: dict[str, Any]) -> list[dict[str, Any]]:
    resources = _address_map(plan)
    return [resources[a] for a in plan.waits_for(resource) if a.startswith(f"{SLEEP}::")]


def _waits_through_a_sleep(plan: Plan, resource: dict[str, Any], target: str) -> bool:
    return any(target in plan.waits_for(sleep) for sleep in _sleeps_waited_for(plan, resource))


def unwaited_log_metric_readers(plan: Plan) -> set[tuple[str, str]]:
    """(reader, metric) pairs where the reader does not wait for a Sleep after the metric."""
    metrics = {
        re.compile(rf"logging\.googleapis\.com/user/{re.escape(m['inputs']['name'])}(?!\w)"): (
            Plan.address(m)
        )
        for m in plan.of_type(LOG_METRIC)
    }
    found = set()
    for resource in plan["resources"]:
        text = json.dumps(resource["inputs"])
        for metric_type, metric in metrics.items():
            if metric_type.search(text) and not _waits_through_a_sleep(plan, resource, metric):
                found.add((Plan.address(resource), metric))
    return found


def _grants(plan: Plan) -> dict[str, dict[str, Any]]:
    return {a: r for a, r in _address_map(plan).items() if GRANT.search(r["type"])}


def _is_cloud_call_without_retry(resource: dict[str, Any]) -> bool:
    return not resource["type"].startswith(RETRIES_ON_ITS_OWN + NOT_A_CLOUD_CALL)


def unwaited_grants(plan: Plan) -> set[tuple[str, str]]:
    """(resource, grant) pairs where a resource relies on a fresh grant without the wait: it
    depends on the grant directly, or it runs as a service account whose grants it does not
    wait for through a Sleep."""
    grants = _grants(plan)
    found = set()
    for resource in plan["resources"]:
        if not _is_cloud_call_without_retry(resource) or Plan.address(resource) in grants:
            continue
        address = Plan.address(resource)
        found |= {(address, d) for d in resource["dependencies"] if d in grants}
        text = json.dumps(resource["inputs"])
        for grant_address, grant in grants.items():
            member = grant["inputs"].get("member", "")
            email = member.removeprefix("serviceAccount:")
            runs_as_grantee = member.startswith("serviceAccount:") and f'"{email}"' in text
            if runs_as_grantee and not _waits_through_a_sleep(plan, resource, grant_address):
                found.add((address, grant_address))
    return found


def test_no_reader_of_a_new_log_metric_goes_before_the_wait(plan: Plan) -> None:
    assert plan.of_type(LOG_METRIC)
    assert unwaited_log_metric_readers(plan) == set()


def test_no_fresh_grant_is_relied_on_before_the_wait(plan: Plan) -> None:
    assert unwaited_grants(plan) == set()


def test_the_cluster_and_node_pools_wait_for_their_grants(plan: Plan) -> None:
    """In each region: the cluster for its KMS grant, the pools for their node account's."""
    kms_grants = plan.each_region("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")
    node_accounts = plan.each_region("gcp:serviceaccount/account:Account", "moderation-nodes")
    pools = plan.in_each_region("gcp:container/nodePool:NodePool")
    for region, cluster in plan.each_region("gcp:container/cluster:Cluster").items():
        kms_grant = Plan.address(kms_grants[region])
        assert _waits_through_a_sleep(plan, cluster, kms_grant), region
        account_id = node_accounts[region]["inputs"]["accountId"]
        node_roles = [
            Plan.address(g)
            for g in _grants(plan).values()
            if g["inputs"].get("member", "").startswith(f"serviceAccount:{account_id}@")
        ]
        assert node_roles, region
        for pool in pools[region]:
            for grant in node_roles:
                assert _waits_through_a_sleep(plan, pool, grant), (pool["name"], grant)


def _planted(plan: Plan) -> Plan:
    return Plan(copy.deepcopy(dict(plan)))


def test_planted_alert_without_the_wait_is_caught(plans: dict[str, Plan]) -> None:
    """Planted: an alert on a log-based metric that depends on the metric directly."""
    reader_type = "gcp:monitoring/alertPolicy:AlertPolicy"
    plan = _planted(plans["dev"])
    metric = plan.of_type(LOG_METRIC)[0]
    alert = {
        "type": reader_type,
        "name": "planted",
        "inputs": {
            "conditions": [
                {
                    "conditionThreshold": {
                        "filter": (
                            f'metric.type="logging.googleapis.com/user/{metric["inputs"]["name"]}"'
                        )
                    }
                }
            ]
        },
        "dependencies": [Plan.address(metric)],
    }
    plan["resources"].append(alert)
    assert (f"{reader_type}::planted", Plan.address(metric)) in unwaited_log_metric_readers(plan)


def test_planted_direct_grant_dependency_is_caught(plans: dict[str, Plan]) -> None:
    """Planted: the cluster depends on its KMS grant directly, as `depends_on` alone would (on
    dev: one cluster, one grant)."""
    plan = _planted(plans["dev"])
    kms_grant = Plan.address(plan.one("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"))
    cluster = plan.one("gcp:container/cluster:Cluster")
    cluster["dependencies"] = [d for d in cluster["dependencies"] if not d.startswith(SLEEP)]
    cluster["dependencies"].append(kms_grant)
    assert (Plan.address(cluster), kms_grant) in unwaited_grants(plan)
