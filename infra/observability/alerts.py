"""Alerting: notification channels, the public uptime check, SLOs with burn-rate alerts, and the
symptom alerts (errors, latency, crash loops, autoscaler at its ceiling, Cloud Armor denials), and
during a rollout, per candidate track (canary, shadow), its flag rates, errors and latency against
stable's.

Each policy carries its runbook (`documentation`), the same text docs/operations.md "Logs,
dashboards and alerts" summarises, so whoever is paged reads what to do in the notification itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.config import NotificationChannelConfig, ObservabilityConfig, Severity
from infra.observability import metrics as m

MODERATION_ENDPOINT = m.MODERATION_ROUTE
SERVER_ERROR_FILTER = 'metric.label.status_code=monitoring.regex.full_match("5..")'

# Multi-window burn-rate alerts (Google SRE workbook, chapter 5): page when 2% of a 30-day error
# budget burns in an hour, open a ticket when 5% burns in six hours; the short window makes the
# alert stop soon after the burn stops.
BURN_RATE_WINDOWS: tuple[tuple[Severity, str, str, float], ...] = (
    ("CRITICAL", "3600s", "300s", 14.4),
    ("WARNING", "21600s", "1800s", 6.0),
)


# Uptime checker regions on three continents (Monitoring requires at least three when named).
UPTIME_CHECKER_REGIONS = ("USA", "EUROPE", "ASIA_PACIFIC")


@dataclass(frozen=True)
class AlertingArgs:
    config: ObservabilityConfig
    project: str
    labels: Mapping[str, str]
    cluster_name: str
    namespace: str
    """The service's own namespace: every HPA and Deployment in it belongs to the service."""
    public_host: str
    """Host name of the public HTTPS endpoint; the uptime check calls https://<host>/readyz."""
    log_metrics_visible: Sequence[pulumi.Resource]
    """What the alerts on log-based metrics wait for (`LogPipeline.log_metrics_visible`): the
    metrics must exist, and Monitoring must see them, before such a policy is created."""
    candidate_tracks: Sequence[str] = ()
    """Release tracks running a candidate Bento (canary, shadow): each is compared with stable."""
    regions: Sequence[str] = ()
    """With several serving regions (one cluster of `cluster_name` each): an alert per region
    that serves nothing while the others serve, and the uptime check from checker regions on
    several continents."""


class Alerting(pulumi.ComponentResource):
    """Notification channels, uptime check, SLOs and every alert policy of one stack."""

    def __init__(
        self, name: str, args: AlertingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("moderation:observability:Alerting", name, None, opts)
        self._name = name
        self._args = args
        self._child = pulumi.ResourceOptions(parent=self)
        self._labels = dict(args.labels)
        self._scope = {"cluster": args.cluster_name, "namespace": args.namespace}
        self._channels = {
            channel.name: self._channel(channel) for channel in args.config.notification_channels
        }
        thresholds = args.config.alerts

        uptime = self._uptime_check()
        self.policies: list[gcp.monitoring.AlertPolicy] = [
            self._promql_policy(
                "error-ratio",
                "Moderation API: high error ratio",
                "CRITICAL",
                f"{self._error_ratio_promql()} > {thresholds.error_ratio}",
                duration="300s",
                runbook=RUNBOOKS["error-ratio"],
            ),
            self._promql_policy(
                "p99-latency",
                "Moderation API: p99 latency above target",
                "WARNING",
                f"{self._p99_latency_promql()} > {thresholds.p99_latency_seconds}",
                duration="600s",
                runbook=RUNBOOKS["p99-latency"],
            ),
            self._promql_policy(
                "autoscaler-at-max",
                "Moderation API: autoscaler pinned at max replicas",
                "WARNING",
                self._autoscaler_at_max_promql(),
                duration=f"{thresholds.autoscaler_at_max_minutes * 60}s",
                runbook=RUNBOOKS["autoscaler-at-max"],
            ),
            self._threshold_policy(
                "crash-looping",
                "Moderation API: containers restarting",
                "CRITICAL",
                gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
                    filter=(
                        f'metric.type="{m.CONTAINER_RESTARTS}" AND resource.type="k8s_container" '
                        f'AND resource.label.cluster_name="{args.cluster_name}" '
                        f'AND resource.label.namespace_name="{args.namespace}"'
                    ),
                    aggregations=[
                        gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
                            alignment_period="600s",
                            per_series_aligner="ALIGN_DELTA",
                            cross_series_reducer="REDUCE_SUM",
                            group_by_fields=["resource.label.pod_name"],
                        )
                    ],
                    comparison="COMPARISON_GT",
                    threshold_value=thresholds.container_restarts_per_ten_minutes,
                    duration="0s",
                ),
                runbook=RUNBOOKS["crash-looping"],
            ),
            self._threshold_policy(
                "armor-denials",
                "Moderation API: Cloud Armor denial spike",
                "WARNING",
                gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
                    filter=(
                        f'metric.type="{m.log_metric_type(m.ARMOR_DENIALS_LOG_METRIC)}" '
                        f'AND resource.type="{m.LB_MONITORED_RESOURCE}"'
                    ),
                    aggregations=[
                        gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
                            alignment_period="300s",
                            per_series_aligner="ALIGN_RATE",
                            cross_series_reducer="REDUCE_SUM",
                            group_by_fields=["metric.label.policy"],
                        )
                    ],
                    comparison="COMPARISON_GT",
                    threshold_value=thresholds.armor_denials_per_second,
                    duration="300s",
                ),
                runbook=RUNBOOKS["armor-denials"],
                depends_on=args.log_metrics_visible,
            ),
            self._threshold_policy(
                "uptime",
                "Moderation API: public /readyz failing",
                "CRITICAL",
                gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
                    filter=(
                        f'metric.type="{m.UPTIME_CHECK_PASSED}" AND resource.type="uptime_url" '
                        f'AND resource.label.host="{args.public_host}"'
                    ),
                    aggregations=[
                        gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
                            alignment_period="300s",
                            per_series_aligner="ALIGN_FRACTION_TRUE",
                            cross_series_reducer="REDUCE_MEAN",
                        )
                    ],
                    comparison="COMPARISON_LT",
                    threshold_value=0.5,
                    duration="300s",
                ),
                runbook=RUNBOOKS["uptime"],
                depends_on=[uptime],
            ),
            *self._slos(),
            *(self._region_silent_policy(region) for region in args.regions),
            *(
                policy
                for track in args.candidate_tracks
                for policy in self._rollout_policies(track)
            ),
        ]
        self.register_outputs(
            {
                "uptime_check": uptime.uptime_check_id,
                "alert_policies": [policy.id for policy in self.policies],
                "notification_channels": [channel.id for channel in self._channels.values()],
            }
        )

    # --- building blocks --------------------------------------------------------------------------

    def channel_ids(self, severity: Severity) -> list[pulumi.Output[str]]:
        """Channels (their resource names) that receive alerts of this severity."""
        return [
            self._channels[channel.name].id
            for channel in self._args.config.notification_channels
            if severity in channel.severities
        ]

    def _channel(self, channel: NotificationChannelConfig) -> gcp.monitoring.NotificationChannel:
        return gcp.monitoring.NotificationChannel(
            f"{self._name}-channel-{channel.name}",
            project=self._args.project,
            display_name=f"moderation {self._labels['environment']}: {channel.name}",
            type="email",
            labels={"email_address": channel.email_address},
            user_labels=self._labels,
            opts=self._child,
        )

    def _policy(
        self,
        key: str,
        display_name: str,
        severity: Severity,
        conditions: list[gcp.monitoring.AlertPolicyConditionArgs],
        runbook: str,
        depends_on: Sequence[pulumi.Resource] = (),
        combiner: str = "OR",
    ) -> gcp.monitoring.AlertPolicy:
        environment = self._labels["environment"]
        return gcp.monitoring.AlertPolicy(
            f"{self._name}-{key}",
            project=self._args.project,
            display_name=f"[{environment}] {display_name}",
            combiner=combiner,
            conditions=conditions,
            severity=severity,
            notification_channels=self.channel_ids(severity),
            documentation=gcp.monitoring.AlertPolicyDocumentationArgs(
                content=runbook,
                mime_type="text/markdown",
                subject=f"[{environment}] {display_name}",
            ),
            alert_strategy=gcp.monitoring.AlertPolicyAlertStrategyArgs(auto_close="1800s"),
            user_labels=self._labels,
            opts=pulumi.ResourceOptions.merge(
                self._child, pulumi.ResourceOptions(depends_on=list(depends_on))
            ),
        )

    def _promql_policy(
        self,
        key: str,
        display_name: str,
        severity: Severity,
        query: str,
        duration: str,
        runbook: str,
    ) -> gcp.monitoring.AlertPolicy:
        condition = gcp.monitoring.AlertPolicyConditionArgs(
            display_name=display_name,
            condition_prometheus_query_language=(
                gcp.monitoring.AlertPolicyConditionConditionPrometheusQueryLanguageArgs(
                    query=query, duration=duration, evaluation_interval="60s"
                )
            ),
        )
        return self._policy(key, display_name, severity, [condition], runbook)

    def _threshold_policy(
        self,
        key: str,
        display_name: str,
        severity: Severity,
        threshold: gcp.monitoring.AlertPolicyConditionConditionThresholdArgs,
        runbook: str,
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> gcp.monitoring.AlertPolicy:
        condition = gcp.monitoring.AlertPolicyConditionArgs(
            display_name=display_name, condition_threshold=threshold
        )
        return self._policy(key, display_name, severity, [condition], runbook, depends_on)

    # --- queries ----------------------------------------------------------------------------------

    def _error_ratio_promql(self) -> str:
        errors = m.promql_selector(m.REQUESTS.series(), {**self._scope, "status_code": "~5.."})
        total = m.promql_selector(m.REQUESTS.series(), self._scope)
        return f"sum(rate({errors}[5m])) / sum(rate({total}[5m]))"

    def _p99_latency_promql(self) -> str:
        buckets = m.promql_selector(
            m.HTTP_DURATION.series("_bucket"), {**self._scope, "route": MODERATION_ENDPOINT}
        )
        return f"histogram_quantile(0.99, sum by (le) (rate({buckets}[5m])))"

    def _autoscaler_at_max_promql(self) -> str:
        """Per HPA (one per release track) in the namespace."""
        current = m.promql_selector(m.HPA_CURRENT_REPLICAS.series(), self._scope)
        ceiling = m.promql_selector(m.HPA_MAX_REPLICAS.series(), self._scope)
        by = "max by (horizontalpodautoscaler)"
        return f"{by} ({current}) >= {by} ({ceiling})"

    # --- rollout: a candidate track against stable ----------------------------------------------

    def _rollout_policies(self, track: str) -> list[gcp.monitoring.AlertPolicy]:
        """A candidate's flag rate per category, error ratio and p99 latency against stable's.

        Both tracks must have answered `minSamples` texts or requests within the window first.
        Only a canary's errors reach clients, so only they page.
        """
        rollout = self._args.config.rollout
        window = f"{rollout.window_minutes}m"
        display = f"Moderation API: {track} "
        return [
            self._promql_policy(
                f"{track}-flag-rate-drift",
                display + "flag rate drifts from stable's",
                "WARNING",
                self._flag_rate_drift_promql(track, window, rollout.flag_rate_drift),
                duration="600s",
                runbook=RUNBOOKS["rollout-flag-rate-drift"],
            ),
            self._promql_policy(
                f"{track}-error-ratio",
                display + "error ratio worse than stable's",
                "CRITICAL" if track == "canary" else "WARNING",
                self._candidate_error_ratio_promql(track, window, rollout.error_ratio_margin),
                duration="300s",
                runbook=RUNBOOKS["rollout-error-ratio"],
            ),
            self._promql_policy(
                f"{track}-p99-latency",
                display + "p99 latency worse than stable's",
                "WARNING",
                self._candidate_p99_promql(track, window, rollout.p99_latency_ratio),
                duration="600s",
                runbook=RUNBOOKS["rollout-p99-latency"],
            ),
        ]

    def _on_track(self, track: str, **matchers: str) -> dict[str, str]:
        return {**self._scope, m.TRACK: track, **matchers}

    def _enough(self, metric: m.PromMetric, suffix: str, track: str, window: str) -> str:
        """`and on ()` guard: the track answered at least minSamples within the window."""
        series = m.promql_selector(metric.series(suffix), self._on_track(track))
        minimum = self._args.config.rollout.min_samples
        return f"and on () (sum(increase({series}[{window}])) >= {minimum})"

    def _flag_rate_drift_promql(self, track: str, window: str, bound: float) -> str:
        """|candidate share flagged - stable share flagged| per category; a category that one
        track never flags counts as 0 there (its counter has no series)."""

        def share(of: str) -> str:
            flagged = m.promql_selector(m.FLAGGED.series(), self._on_track(of))
            texts = m.promql_selector(m.INPUT_CHARS.series("_count"), self._on_track(of))
            return (
                f"(sum by (category) (rate({flagged}[{window}])) "
                f"/ on () group_left sum(rate({texts}[{window}])))"
            )

        candidate, stable = share(track), share("stable")
        texts = (m.INPUT_CHARS, "_count")
        return (
            f"abs(({candidate} or on (category) ({stable} * 0)) - on (category) "
            f"({stable} or on (category) ({candidate} * 0))) > {bound} "
            f"{self._enough(*texts, track, window)} {self._enough(*texts, 'stable', window)}"
        )

    def _candidate_error_ratio_promql(self, track: str, window: str, margin: float) -> str:
        def ratio(of: str) -> str:
            errors = m.promql_selector(m.REQUESTS.series(), self._on_track(of, status_code="~5.."))
            total = m.promql_selector(m.REQUESTS.series(), self._on_track(of))
            return f"(sum(rate({errors}[{window}])) / sum(rate({total}[{window}])))"

        return (
            f"{ratio(track)} > on () (({ratio('stable')} or on () vector(0)) + {margin}) "
            f"{self._enough(m.REQUESTS, '', track, window)}"
        )

    def _candidate_p99_promql(self, track: str, window: str, factor: float) -> str:
        def p99(of: str) -> str:
            buckets = m.promql_selector(
                m.HTTP_DURATION.series("_bucket"),
                self._on_track(of, route=MODERATION_ENDPOINT),
            )
            return f"histogram_quantile(0.99, sum by (le) (rate({buckets}[{window}])))"

        return (
            f"{p99(track)} > on () ({factor} * {p99('stable')}) "
            f"{self._enough(m.REQUESTS, '', track, window)} "
            f"{self._enough(m.REQUESTS, '', 'stable', window)}"
        )

    def _uptime_check(self) -> gcp.monitoring.UptimeCheckConfig:
        args = self._args
        return gcp.monitoring.UptimeCheckConfig(
            f"{self._name}-readyz",
            project=args.project,
            display_name=f"moderation {self._labels['environment']} https://{args.public_host}/readyz",
            period=f"{args.config.uptime_check_period_seconds}s",
            timeout="10s",
            checker_type="STATIC_IP_CHECKERS",
            # Default: every checker region. With several serving regions, named, so that the
            # anycast address is reached from (and near) each continent the stack serves.
            selected_regions=list(UPTIME_CHECKER_REGIONS) if args.regions else None,
            http_check=gcp.monitoring.UptimeCheckConfigHttpCheckArgs(
                path="/readyz",
                port=443,
                use_ssl=True,
                validate_ssl=True,
                request_method="GET",
                accepted_response_status_codes=[
                    gcp.monitoring.UptimeCheckConfigHttpCheckAcceptedResponseStatusCodeArgs(
                        status_class="STATUS_CLASS_2XX"
                    )
                ],
            ),
            monitored_resource=gcp.monitoring.UptimeCheckConfigMonitoredResourceArgs(
                type="uptime_url", labels={"project_id": args.project, "host": args.public_host}
            ),
            user_labels=self._labels,
            opts=self._child,
        )

    def _region_silent_policy(self, region: str) -> gcp.monitoring.AlertPolicy:
        """One region answers no request while the stack as a whole serves: its pods, its
        exports or its load balancer backends are gone (traffic spilled to the others)."""
        everywhere = m.promql_selector(m.REQUESTS.series(), self._scope)
        here = m.promql_selector(m.REQUESTS.series(), {**self._scope, "location": region})
        return self._promql_policy(
            f"region-silent-{region}",
            f"Moderation API: {region} serves nothing",
            "CRITICAL",
            f"(sum(rate({here}[10m])) or vector(0)) == 0 and on() sum(rate({everywhere}[10m])) > 0",
            duration="600s",
            runbook=RUNBOOKS["region-silent"],
        )

    # --- SLOs -------------------------------------------------------------------------------------

    def _slos(self) -> list[gcp.monitoring.AlertPolicy]:
        """An availability and a latency SLO on the service's own metrics, each with a fast-burn
        (page) and a slow-burn (ticket) alert: over the whole stack and, with several regions,
        over each region alone (its `location`), so that one region burning its budget while
        the others carry the stack's average still alerts."""
        args = self._args
        environment = self._labels["environment"]
        service_id = f"moderation-{environment}"
        service = gcp.monitoring.CustomService(
            f"{self._name}-service",
            project=args.project,
            service_id=service_id,
            display_name=f"Moderation API ({environment})",
            user_labels=self._labels,
            opts=self._child,
        )
        target = (
            f'resource.type="prometheus_target" '
            f'resource.label.cluster="{args.cluster_name}" '
            f'resource.label.namespace="{args.namespace}"'
        )
        scopes = {"": target} | {
            f"-{region}": f'{target} resource.label.location="{region}"' for region in args.regions
        }
        return [
            policy
            for suffix, scope in scopes.items()
            for policy in self._slo_policies(service, service_id, suffix, scope)
        ]

    def _slo_policies(
        self, service: gcp.monitoring.CustomService, service_id: str, suffix: str, target: str
    ) -> list[gcp.monitoring.AlertPolicy]:
        """The two SLOs over the series `target` selects (ids end with `suffix`), and their
        burn-rate alerts."""
        args = self._args
        slo = args.config.slo
        where = f" in {suffix.removeprefix('-')}" if suffix else ""
        requests = f'metric.type="{m.REQUESTS.monitoring_type}" {target}'
        sli_by_key = {
            "availability": (
                slo.availability_goal,
                f"{slo.availability_goal:.2%} of requests answered without a 5xx{where}",
                gcp.monitoring.SloRequestBasedSliArgs(
                    good_total_ratio=gcp.monitoring.SloRequestBasedSliGoodTotalRatioArgs(
                        total_service_filter=requests,
                        bad_service_filter=f"{requests} {SERVER_ERROR_FILTER}",
                    )
                ),
            ),
            "latency": (
                slo.latency_goal,
                f"{slo.latency_goal:.2%} of requests within {slo.latency_threshold_seconds}s"
                f"{where}",
                gcp.monitoring.SloRequestBasedSliArgs(
                    distribution_cut=gcp.monitoring.SloRequestBasedSliDistributionCutArgs(
                        distribution_filter=(
                            f'metric.type="{m.HTTP_DURATION.monitoring_type}" {target} '
                            f'metric.label.route="{MODERATION_ENDPOINT}"'
                        ),
                        range=gcp.monitoring.SloRequestBasedSliDistributionCutRangeArgs(
                            max=slo.latency_threshold_seconds
                        ),
                    )
                ),
            ),
        }
        policies = []
        for sli_key, (goal, display_name, sli) in sli_by_key.items():
            key = f"{sli_key}{suffix}"
            objective = gcp.monitoring.Slo(
                f"{self._name}-slo-{key}",
                project=args.project,
                service=service.service_id,
                slo_id=key,
                display_name=display_name,
                goal=goal,
                rolling_period_days=slo.rolling_period_days,
                request_based_sli=sli,
                user_labels=self._labels,
                opts=self._child,
            )
            slo_name = f"projects/{args.project}/services/{service_id}/serviceLevelObjectives/{key}"
            for severity, long_window, short_window, rate in BURN_RATE_WINDOWS:
                speed = "fast" if severity == "CRITICAL" else "slow"
                conditions = [
                    gcp.monitoring.AlertPolicyConditionArgs(
                        display_name=f"{key} SLO burn rate over {window} above {rate}",
                        condition_threshold=gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
                            filter=f'select_slo_burn_rate("{slo_name}", "{window}")',
                            comparison="COMPARISON_GT",
                            threshold_value=rate,
                            duration="0s",
                        ),
                    )
                    for window in (long_window, short_window)
                ]
                policies.append(
                    self._policy(
                        f"slo-{key}-{speed}-burn",
                        f"Moderation API: {sli_key} SLO error budget burning {speed}{where}",
                        severity,
                        conditions,
                        RUNBOOKS[f"slo-{sli_key}"],
                        depends_on=[objective],
                        combiner="AND",
                    )
                )
        return policies


_ROLLBACK = (
    "Roll back: remove `release.canary` (or `release.shadow`) from `Pulumi.<stack>.yaml` and "
    '`pulumi up` (docs/models.md "Roll out a new model").'
)

RUNBOOKS: dict[str, str] = {
    "rollout-flag-rate-drift": (
        "A candidate release (canary or shadow) flags a share of texts, in at least one category, "
        "that differs from stable's by more than `observability.rollout.flagRateDrift`, over the "
        "same traffic (a shadow sees every request; a canary a random share).\n\n"
        "1. Dashboard *Moderation API*, *release tracks*: which category, which way, since when.\n"
        "2. Expected (a new model meant to flag more, new thresholds)? Check it offline first: "
        "`make compare BASELINE=<stable Bento> CANDIDATE=<candidate Bento>` on a sample of your "
        "own texts.\n"
        f"3. Not expected: {_ROLLBACK}"
    ),
    "rollout-error-ratio": (
        "A candidate release answers more 5xx than stable, by more than "
        "`observability.rollout.errorRatioMargin`. A canary's errors reach clients (this pages); "
        "a shadow's do not.\n\n"
        "1. The candidate's logs: `kubectl -n moderation logs -l moderation.dev/track=<track> "
        "--tail=200`; the dashboard's error panel splits by track and Bento version.\n"
        "2. Crash loops or OOM on the candidate pods: `kubectl -n moderation get pods "
        "-l moderation.dev/track=<track>`.\n"
        f"3. {_ROLLBACK}"
    ),
    "rollout-p99-latency": (
        "A candidate release's p99 latency is above `observability.rollout.p99LatencyRatio` "
        "times stable's.\n\n"
        "1. A larger model is slower: compare texts/s in `make compare`, then size "
        "`workload.resources` or the node pool for it before promoting.\n"
        "2. Few candidate pods (a canary or shadow starts at minReplicas): check its HPA.\n"
        f"3. {_ROLLBACK}"
    ),
    "error-ratio": (
        "More than the configured share of `/v1/moderations` requests ended in a 5xx over 5 "
        "minutes.\n\n1. Dashboard *Moderation API*: which model and status code.\n"
        '2. Logs: `resource.labels.namespace_name="moderation" severity>=ERROR`.\n'
        "3. A rollout in progress? Set the canary weight to 0 "
        '(docs/models.md "Roll out a new model").'
    ),
    "p99-latency": (
        "The 99th percentile of request latency is above target for 10 minutes.\n\n"
        "1. Dashboard: is the autoscaler at max, are batches full, is one model slow?\n"
        "2. At max replicas: raise `workload.autoscaling.maxReplicas` or the node pool's max.\n"
        "3. Long inputs: check the *input length* panel; oversized inputs are rejected by the API."
    ),
    "autoscaler-at-max": (
        "The HorizontalPodAutoscaler has run at its maximum replica count: demand exceeds the "
        "configured capacity and latency will follow.\n\n"
        "1. Confirm real traffic (dashboard request rate) rather than abuse (Cloud Armor panel).\n"
        "2. Raise `workload.autoscaling.maxReplicas` and `nodePools.model.maxNodes`, `pulumi up`."
    ),
    "crash-looping": (
        "Containers in the service namespace restarted several times within 10 minutes.\n\n"
        "1. `kubectl -n moderation get pods` and `kubectl -n moderation describe pod <pod>`: "
        "OOMKilled means the memory limit is too small for the model; probe failures mean the "
        "model loads slower than the startup probe allows.\n"
        "2. Logs of the previous container: `kubectl -n moderation logs <pod> --previous`.\n"
        "3. Bad release: roll back `release.stable` to the previous Bento and `pulumi up`."
    ),
    "armor-denials": (
        "Cloud Armor denies many requests: an attack, a client in a retry loop, or a WAF rule "
        "that blocks legitimate traffic.\n\n"
        '1. Logs: `resource.type="http_load_balancer" '
        'jsonPayload.enforcedSecurityPolicy.outcome="DENY"`, grouped by rule and client IP.\n'
        "2. Legitimate traffic blocked: tune the rule in the edge config; abuse: nothing to do."
    ),
    "region-silent": (
        "One serving region answers no request while the others do: the load balancer sends it "
        "nothing (more than half of its backends unhealthy, or its ServiceExports gone), or its "
        "pods are down. Clients are served by the other regions, up to their maxima.\n\n"
        "1. `kubectl --context <region> -n moderation get pods,serviceexports`; the export's "
        "conditions say whether MCS took it.\n"
        "2. `kubectl -n moderation describe gateway` in the config cluster: backend health per "
        "region.\n"
        "3. Expect the autoscaler-at-max alert in the other regions next: add capacity there first."
    ),
    "uptime": (
        "Google's uptime checkers cannot get a 2xx from `https://<host>/readyz`: users cannot "
        "either.\n\n1. Certificate, DNS or load balancer: `gcloud compute ssl-certificates list`, "
        "Gateway status `kubectl -n moderation describe gateway`.\n"
        "2. No ready pod: see *containers restarting* and the Deployment's events."
    ),
    "slo-availability": (
        "The availability SLO's error budget burns too fast (CRITICAL: 2% of it within an hour; "
        "WARNING: 5% within six hours). Treat like the error-ratio alert; a slow burn can wait "
        "for working hours."
    ),
    "slo-latency": (
        "The latency SLO's error budget burns too fast. Treat like the p99-latency alert; a slow "
        "burn usually means capacity or a slower model version."
    ),
}
