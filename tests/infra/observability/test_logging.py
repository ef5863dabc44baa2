"""Log sinks (BigQuery, Cloud Storage archive, optional Pub/Sub), their writers' grants,
health-check exclusions and log-based metrics, for both stacks, as the plan declares them."""

from __future__ import annotations

import re

import pytest

from infra.observability.logs import PROBE_PATHS
from tests.infra.plans import stack_config

SINK = "gcp:logging/projectSink:ProjectSink"
DAY_S = 86_400


def _sink(plan: dict, destination_prefix: str) -> dict:
    (sink,) = [
        s["inputs"]
        for s in plan.of_type(SINK)
        if s["inputs"]["destination"].startswith(destination_prefix)
    ]
    return sink


def _logs_config(plan: dict) -> dict:
    return stack_config(plan.stack)["moderation:observability"]["logSinks"]


def test_bigquery_sink_writes_partitioned_tables_into_the_dataset(plan: dict) -> None:
    dataset = plan.one("gcp:bigquery/dataset:Dataset")["inputs"]
    sink = _sink(plan, "bigquery.googleapis.com/")
    project = stack_config(plan.stack)["gcp:project"]
    assert sink["destination"] == (
        f"bigquery.googleapis.com/projects/{project}/datasets/{dataset['datasetId']}"
    )
    assert sink["bigqueryOptions"] == {"usePartitionedTables": True}
    assert sink["uniqueWriterIdentity"] is True
    retention_days = _logs_config(plan)["bigqueryRetentionDays"]
    assert dataset["defaultPartitionExpirationMs"] == retention_days * DAY_S * 1000
    assert dataset["deleteContentsOnDestroy"] is (plan.stack != "prod")


def test_bigquery_sink_identity_may_write_to_its_dataset_only(plan: dict) -> None:
    grant = plan.one("gcp:bigquery/datasetIamMember:DatasetIamMember")["inputs"]
    sink = _sink(plan, "bigquery.googleapis.com/")
    dataset = plan.one("gcp:bigquery/dataset:Dataset")["inputs"]
    # The plan tool's mocks give each sink its own writer identity, derived from its name.
    assert (
        grant["member"] == f"serviceAccount:{sink['name']}@gcp-sa-logging.iam.gserviceaccount.com"
    )
    assert grant["role"] == "roles/bigquery.dataEditor"
    assert grant["datasetId"] == dataset["datasetId"]


def test_archive_bucket_is_private_expires_and_cools_down(plan: dict) -> None:
    bucket = plan.one("gcp:storage/bucket:Bucket")["inputs"]
    settings = _logs_config(plan)
    assert bucket["uniformBucketLevelAccess"] is True
    assert bucket["publicAccessPrevention"] == "enforced"
    # A retention policy only where the archive is protected: dev must stay destroyable.
    if plan.stack == "prod":
        retention = bucket["retentionPolicy"]["retentionPeriod"]
        assert retention == settings["archiveRetentionDays"] * DAY_S
    else:
        assert "retentionPolicy" not in bucket
    assert bucket["forceDestroy"] is (plan.stack != "prod")
    rules = {
        (rule["action"]["type"], rule["action"].get("storageClass")): rule["condition"]["age"]
        for rule in bucket["lifecycleRules"]
    }
    assert rules == {
        ("SetStorageClass", "NEARLINE"): settings["archiveNearlineAfterDays"],
        ("SetStorageClass", "COLDLINE"): settings["archiveColdlineAfterDays"],
        ("Delete", None): settings["archiveRetentionDays"],
    }


def test_archive_sink_identity_may_only_create_objects_in_the_bucket(plan: dict) -> None:
    bucket = plan.one("gcp:storage/bucket:Bucket")["inputs"]
    sink = _sink(plan, "storage.googleapis.com/")
    grant = plan.one("gcp:storage/bucketIAMMember:BucketIAMMember")["inputs"]
    assert sink["destination"] == f"storage.googleapis.com/{bucket['name']}"
    assert grant["bucket"] == bucket["name"]
    assert grant["role"] == "roles/storage.objectCreator"
    assert (
        grant["member"] == f"serviceAccount:{sink['name']}@gcp-sa-logging.iam.gserviceaccount.com"
    )


def test_pubsub_forwarder_exists_exactly_when_configured(plan: dict) -> None:
    wanted = _logs_config(plan)["pubsubForwarder"]
    topics = plan.of_type("gcp:pubsub/topic:Topic")
    assert len(topics) == int(wanted)
    assert len(plan.of_type("gcp:pubsub/subscription:Subscription")) == int(wanted)
    if wanted:
        topic = topics[0]["inputs"]
        project = stack_config(plan.stack)["gcp:project"]
        sink = _sink(plan, "pubsub.googleapis.com/")
        assert (
            sink["destination"]
            == f"pubsub.googleapis.com/projects/{project}/topics/{topic['name']}"
        )
        grant = plan.one("gcp:pubsub/topicIAMMember:TopicIAMMember")["inputs"]
        assert grant["role"] == "roles/pubsub.publisher"
        assert grant["member"] == (
            f"serviceAccount:{sink['name']}@gcp-sa-logging.iam.gserviceaccount.com"
        )


def test_health_check_noise_is_excluded_everywhere_but_failures_are_kept(plan: dict) -> None:
    exclusions = [
        e["inputs"]["filter"] for e in plan.of_type("gcp:logging/projectExclusion:ProjectExclusion")
    ]
    assert len(exclusions) == 2
    for sink in plan.of_type(SINK):
        assert sorted(e["filter"] for e in sink["inputs"]["exclusions"]) == sorted(exclusions)
    for path in PROBE_PATHS:
        assert all(path.strip("/") in text for text in exclusions)
    lb, container = sorted(exclusions)  # "http_load_balancer" sorts before "k8s_container"
    assert lb.startswith('resource.type="http_load_balancer"')
    assert "httpRequest.status<400" in lb
    assert container.startswith('resource.type="k8s_container"')
    assert "severity<WARNING" in container


@pytest.mark.parametrize(
    ("metric_filter_part", "labels"),
    [
        ('jsonPayload.enforcedSecurityPolicy.outcome="DENY"', {"policy", "rule"}),
        ("httpRequest.status>=500", {"status", "detail"}),
    ],
)
def test_log_based_metrics_count_armor_denials_and_5xx(
    plan: dict, metric_filter_part: str, labels: set[str]
) -> None:
    (metric,) = [
        m["inputs"]
        for m in plan.of_type("gcp:logging/metric:Metric")
        if metric_filter_part in m["inputs"]["filter"]
    ]
    descriptor = metric["metricDescriptor"]
    assert (descriptor["metricKind"], descriptor["valueType"]) == ("DELTA", "INT64")
    assert {label["key"] for label in descriptor["labels"]} == labels
    assert set(metric["labelExtractors"]) == labels
    assert all(re.fullmatch(r"EXTRACT\([\w.]+\)", x) for x in metric["labelExtractors"].values())
