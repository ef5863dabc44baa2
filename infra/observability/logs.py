"""Centralized logging: sinks to BigQuery, a Cloud Storage archive and optionally Pub/Sub,
health-check exclusions, and the log-based metrics that alerts and the dashboard read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumiverse_time as time

from infra.config import LogSinksConfig
from infra.observability.metrics import (
    ARMOR_DENIALS_LOG_METRIC,
    LB_5XX_LOG_METRIC,
    LB_LOG_RESOURCE,
)

DAY_MS = 24 * 3600 * 1000
# A new log-based metric can take this long to become visible to Cloud Monitoring, which refuses
# an alert policy on it until then (404 "Cannot find metric(s) ... could take up to 10 minutes";
# hashicorp/terraform-provider-google#11102).
LOG_METRIC_VISIBILITY = "10m"
PROBE_PATHS = ("/livez", "/readyz", "/metrics")
"""Paths hit by kubelet probes, the load balancer health check, the uptime check and the scraper."""


@dataclass(frozen=True)
class LogPipelineArgs:
    config: LogSinksConfig
    project: str
    region: str
    labels: Mapping[str, str]
    cluster_name: str
    namespace: str
    gateway_name: str
    """The Gateway (in `namespace`) whose load balancer's request logs are kept."""
    name_prefix: str
    """Prefix of unique names (bucket, dataset, topic, sinks), e.g. `moderation-dev`."""
    protect: bool
    """Refuse to delete data stores (prod): no force-destroy, no delete-contents-on-destroy."""


def load_balancer_filter(namespace: str, gateway_name: str) -> str:
    """Request logs of this Gateway's load balancer only, not of every one in the project.

    The GKE Gateway controller names the load balancer's URL maps (HTTPS and the HTTP redirect)
    `gkegw1-<hash>-<namespace>-<gateway>-<hash>`; no other Gateway has the same pair.
    """
    return (
        f'resource.type="{LB_LOG_RESOURCE}" '
        f'AND resource.labels.url_map_name=~"-{namespace}-{gateway_name}-"'
    )


def workload_log_filter(project: str, cluster_name: str, namespace: str, gateway_name: str) -> str:
    """The service's container logs plus its load balancer's request logs."""
    workload = (
        f'resource.type="k8s_container" AND resource.labels.project_id="{project}" '
        f'AND resource.labels.cluster_name="{cluster_name}" '
        f'AND resource.labels.namespace_name="{namespace}"'
    )
    return f"({workload}) OR ({load_balancer_filter(namespace, gateway_name)})"


def health_check_filters() -> dict[str, str]:
    """Log lines that only say a probe succeeded: noise that costs ingestion and storage.

    The load balancer logs the uptime checks; in containers, the service's JSON request log
    (`httpRequest`, promoted by Cloud Logging) and BentoML's access log (`path=...` text) log the
    kubelet probes and the metrics scrapes.
    """
    probe_url = "|".join(path.removeprefix("/") for path in PROBE_PATHS)
    access_log = " OR ".join(f'textPayload:"path={path}"' for path in PROBE_PATHS)
    return {
        "lb-health-checks": (
            'resource.type="http_load_balancer" AND httpRequest.status<400 '
            f'AND httpRequest.requestUrl=~"/({probe_url})$"'
        ),
        "container-probes": (
            'resource.type="k8s_container" AND severity<WARNING '
            f'AND (httpRequest.requestUrl=~"^/({probe_url})$" OR {access_log})'
        ),
    }


class LogPipeline(pulumi.ComponentResource):
    """Log sinks with their writer identities' grants, exclusions and log-based metrics.

    `log_metrics_visible` is what a reader of the log-based metrics (alert policy, dashboard)
    waits for: a wait that starts once they exist and runs again when one is added."""

    log_metrics_visible: pulumi.Resource

    def __init__(
        self, name: str, args: LogPipelineArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("moderation:observability:LogPipeline", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config = args.config
        labels = dict(args.labels)
        sink_filter = workload_log_filter(
            args.project, args.cluster_name, args.namespace, args.gateway_name
        )
        load_balancer = load_balancer_filter(args.namespace, args.gateway_name)
        exclusions = [
            gcp.logging.ProjectSinkExclusionArgs(name=key, filter=value)
            for key, value in health_check_filters().items()
        ]

        # Cloud Logging's own _Default bucket: drop probe noise before it is ingested and billed.
        for key, value in health_check_filters().items():
            gcp.logging.ProjectExclusion(
                f"{name}-exclude-{key}",
                project=args.project,
                name=f"{args.name_prefix}-{key}",
                description="Successful health checks and probes: noise, not signal.",
                filter=value,
                opts=child,
            )

        # BigQuery: queryable logs, one partitioned table per log, partitions expire.
        dataset = gcp.bigquery.Dataset(
            f"{name}-bigquery",
            project=args.project,
            dataset_id=args.name_prefix.replace("-", "_") + "_logs",
            location=args.region,
            description="Service and load balancer logs exported by a Cloud Logging sink.",
            default_partition_expiration_ms=config.bigquery_retention_days * DAY_MS,
            delete_contents_on_destroy=not args.protect,
            labels=labels,
            opts=child,
        )
        bigquery_sink = gcp.logging.ProjectSink(
            f"{name}-to-bigquery",
            project=args.project,
            name=f"{args.name_prefix}-to-bigquery",
            destination=pulumi.Output.concat(
                "bigquery.googleapis.com/projects/", args.project, "/datasets/", dataset.dataset_id
            ),
            filter=sink_filter,
            exclusions=exclusions,
            unique_writer_identity=True,
            bigquery_options=gcp.logging.ProjectSinkBigqueryOptionsArgs(
                use_partitioned_tables=True
            ),
            opts=child,
        )
        gcp.bigquery.DatasetIamMember(
            f"{name}-bigquery-sink-writer",
            project=args.project,
            dataset_id=dataset.dataset_id,
            role="roles/bigquery.dataEditor",
            member=bigquery_sink.writer_identity,
            opts=child,
        )

        # Cloud Storage: the cheap, long-term archive; colder classes as objects age.
        archive = gcp.storage.Bucket(
            f"{name}-archive",
            project=args.project,
            name=f"{args.project}-log-archive",  # bucket names are global: the project's is
            location=args.region.upper(),
            storage_class="STANDARD",
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            force_destroy=not args.protect,
            # Objects under a retention policy cannot be deleted, not even by force_destroy: only
            # a protected (prod) archive has one, so that `pulumi destroy` of dev can finish.
            # Elsewhere the lifecycle rule below still deletes objects at the same age.
            retention_policy=gcp.storage.BucketRetentionPolicyArgs(
                retention_period=config.archive_retention_days * 24 * 3600,
                is_locked=config.archive_lock_retention,
            )
            if args.protect
            else None,
            lifecycle_rules=[
                _storage_class_rule("NEARLINE", config.archive_nearline_after_days),
                _storage_class_rule("COLDLINE", config.archive_coldline_after_days),
                gcp.storage.BucketLifecycleRuleArgs(
                    action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
                    condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                        age=config.archive_retention_days
                    ),
                ),
            ],
            labels=labels,
            opts=child,
        )
        archive_sink = gcp.logging.ProjectSink(
            f"{name}-to-archive",
            project=args.project,
            name=f"{args.name_prefix}-to-archive",
            destination=pulumi.Output.concat("storage.googleapis.com/", archive.name),
            filter=sink_filter,
            exclusions=exclusions,
            unique_writer_identity=True,
            opts=child,
        )
        gcp.storage.BucketIAMMember(
            f"{name}-archive-sink-writer",
            bucket=archive.name,
            role="roles/storage.objectCreator",
            member=archive_sink.writer_identity,
            opts=child,
        )

        outputs: dict[str, pulumi.Input[str] | None] = {
            "bigquery_dataset": dataset.dataset_id,
            "archive_bucket": archive.name,
            "forwarder_subscription": None,
        }
        if config.pubsub_forwarder:
            outputs["forwarder_subscription"] = self._forwarder(
                name, args, sink_filter, exclusions, child
            )

        log_metrics = [
            gcp.logging.Metric(
                f"{name}-armor-denials",
                project=args.project,
                name=ARMOR_DENIALS_LOG_METRIC,
                description="Requests Cloud Armor denied (WAF rule or rate limit).",
                filter=f'{load_balancer} AND jsonPayload.enforcedSecurityPolicy.outcome="DENY"',
                metric_descriptor=_counter_descriptor("Cloud Armor denials", ["policy", "rule"]),
                label_extractors={
                    "policy": "EXTRACT(jsonPayload.enforcedSecurityPolicy.name)",
                    "rule": "EXTRACT(jsonPayload.enforcedSecurityPolicy.priority)",
                },
                opts=child,
            ),
            gcp.logging.Metric(
                f"{name}-lb-5xx",
                project=args.project,
                name=LB_5XX_LOG_METRIC,
                description="5xx responses seen at the load balancer, including those no pod "
                "answered (no healthy backend, timeouts), which the service cannot count.",
                filter=f"{load_balancer} AND httpRequest.status>=500",
                metric_descriptor=_counter_descriptor("Load balancer 5xx", ["status", "detail"]),
                label_extractors={
                    "status": "EXTRACT(httpRequest.status)",
                    "detail": "EXTRACT(jsonPayload.statusDetails)",
                },
                opts=child,
            ),
        ]
        self.log_metrics_visible = time.Sleep(
            f"{name}-log-metrics-visible",
            create_duration=LOG_METRIC_VISIBILITY,
            triggers={
                "metrics": pulumi.Output.all(*(m.name for m in log_metrics)).apply(
                    lambda names: ",".join(sorted(names))
                )
            },
            opts=child.merge(pulumi.ResourceOptions(depends_on=log_metrics)),
        )
        self.bigquery_dataset = dataset.dataset_id
        self.archive_bucket = archive.name
        self.register_outputs(outputs)

    def _forwarder(
        self,
        name: str,
        args: LogPipelineArgs,
        sink_filter: str,
        exclusions: list[gcp.logging.ProjectSinkExclusionArgs],
        child: pulumi.ResourceOptions,
    ) -> pulumi.Output[str]:
        """Pub/Sub topic + pull subscription that an ELK or Datadog forwarder consumes."""
        topic = gcp.pubsub.Topic(
            f"{name}-forwarder",
            project=args.project,
            name=f"{args.name_prefix}-logs",
            message_retention_duration="86400s",
            labels=dict(args.labels),
            opts=child,
        )
        sink = gcp.logging.ProjectSink(
            f"{name}-to-pubsub",
            project=args.project,
            name=f"{args.name_prefix}-to-pubsub",
            destination=pulumi.Output.concat(
                "pubsub.googleapis.com/projects/", args.project, "/topics/", topic.name
            ),
            filter=sink_filter,
            exclusions=exclusions,
            unique_writer_identity=True,
            opts=child,
        )
        gcp.pubsub.TopicIAMMember(
            f"{name}-pubsub-sink-writer",
            project=args.project,
            topic=topic.name,
            role="roles/pubsub.publisher",
            member=sink.writer_identity,
            opts=child,
        )
        subscription = gcp.pubsub.Subscription(
            f"{name}-forwarder-subscription",
            project=args.project,
            name=f"{args.name_prefix}-logs-forwarder",
            topic=topic.id,
            ack_deadline_seconds=60,
            message_retention_duration="604800s",
            expiration_policy=gcp.pubsub.SubscriptionExpirationPolicyArgs(ttl=""),
            labels=dict(args.labels),
            opts=child,
        )
        return subscription.name


def _storage_class_rule(storage_class: str, age_days: int) -> gcp.storage.BucketLifecycleRuleArgs:
    return gcp.storage.BucketLifecycleRuleArgs(
        action=gcp.storage.BucketLifecycleRuleActionArgs(
            type="SetStorageClass", storage_class=storage_class
        ),
        condition=gcp.storage.BucketLifecycleRuleConditionArgs(age=age_days),
    )


def _counter_descriptor(
    display_name: str, label_keys: list[str]
) -> gcp.logging.MetricMetricDescriptorArgs:
    return gcp.logging.MetricMetricDescriptorArgs(
        metric_kind="DELTA",
        value_type="INT64",
        unit="1",
        display_name=display_name,
        labels=[
            gcp.logging.MetricMetricDescriptorLabelArgs(key=key, value_type="STRING")
            for key in label_keys
        ],
    )
