"""Config sections of observability and cost (to move into infra/config.py on wiring)."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from infra.config import ResourceName, _Section

Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]
Severity = Literal["CRITICAL", "WARNING"]


# --- observability --------------------------------------------------------------------------------


class NotificationChannelConfig(_Section):
    """Where alerts go. `labels` are the channel type's public labels (e.g. `email_address`).

    A secret part (PagerDuty `service_key`, Slack `auth_token`) is never written in a stack file:
    `secretConfigKey` names a Pulumi secret (`pulumi config set --secret moderation:<key> ...`).
    """

    name: ResourceName
    type: Literal["email", "pagerduty", "slack"]
    labels: dict[str, str] = Field(default_factory=dict)
    secret_config_key: str | None = None
    severities: Annotated[tuple[Severity, ...], Field(min_length=1)] = ("CRITICAL", "WARNING")

    @model_validator(mode="after")
    def _labels_match_type(self) -> Self:
        required = {"email": "email_address", "slack": "channel_name", "pagerduty": None}[self.type]
        if required and required not in self.labels:
            raise ValueError(f"a {self.type} channel needs labels.{required}")
        if self.type in ("pagerduty", "slack") and not self.secret_config_key:
            raise ValueError(f"a {self.type} channel needs secretConfigKey (a Pulumi secret)")
        return self


class LogSinksConfig(_Section):
    """Where the service's and the load balancer's logs are kept beyond Cloud Logging's default."""

    bigquery_retention_days: Annotated[int, Field(ge=1, le=3650)]
    archive_retention_days: Annotated[int, Field(ge=1, le=3650)]
    archive_lock_retention: bool = Field(
        default=False,
        description="Lock the archive bucket's retention policy. Irreversible: a locked bucket "
        "cannot be deleted before its newest object is archiveRetentionDays old.",
    )
    archive_nearline_after_days: Annotated[int, Field(ge=1)] = 30
    archive_coldline_after_days: Annotated[int, Field(ge=1)] = 90
    pubsub_forwarder: bool = Field(
        default=False, description="Also publish logs to Pub/Sub for an ELK or Datadog forwarder."
    )

    @model_validator(mode="after")
    def _lifecycle_in_order(self) -> Self:
        if not (
            self.archive_nearline_after_days
            < self.archive_coldline_after_days
            < self.archive_retention_days
        ):
            raise ValueError(
                "need archiveNearlineAfterDays < archiveColdlineAfterDays < archiveRetentionDays"
            )
        return self


class AlertThresholds(_Section):
    """When to page. Tuned per stack: dev tolerates more than prod."""

    error_ratio: Fraction = Field(description="Share of 5xx responses over 5 minutes.")
    p99_latency_seconds: Annotated[float, Field(gt=0)]
    container_restarts_per_10m: Annotated[int, Field(ge=1)] = 3
    autoscaler_at_max_minutes: Annotated[int, Field(ge=1, le=1440)] = 15
    armor_denials_per_second: Annotated[float, Field(gt=0)]


class SloConfig(_Section):
    """Service level objectives over a rolling window; burn-rate alerts guard the error budget."""

    availability_goal: Annotated[float, Field(ge=0.9, le=0.9999)]
    latency_goal: Annotated[float, Field(ge=0.9, le=0.9999)]
    latency_threshold_seconds: Annotated[float, Field(gt=0)]
    rolling_period_days: Annotated[int, Field(ge=1, le=30)] = 28


class ObservabilityConfig(_Section):
    """Logging sinks, alert thresholds, SLO targets and notification channels of one stack."""

    notification_channels: Annotated[list[NotificationChannelConfig], Field(min_length=1)]
    log_sinks: LogSinksConfig
    alerts: AlertThresholds
    slo: SloConfig
    uptime_check_period_seconds: Literal[60, 300, 600, 900] = 60

    @model_validator(mode="after")
    def _channel_names_unique(self) -> Self:
        names = [channel.name for channel in self.notification_channels]
        if len(names) != len(set(names)):
            raise ValueError(f"notificationChannels names must be unique, got {names}")
        if not any("CRITICAL" in channel.severities for channel in self.notification_channels):
            raise ValueError("at least one notification channel must receive CRITICAL alerts")
        return self


# --- budget ---------------------------------------------------------------------------------------


class BudgetConfig(_Section):
    """A monthly billing budget on this stack's project; notifications at each threshold."""

    billing_account: Annotated[str, Field(pattern=r"^[0-9A-F]{6}-[0-9A-F]{6}-[0-9A-F]{6}$")]
    monthly_amount_usd: Annotated[int, Field(ge=1)]
    thresholds: Annotated[tuple[Annotated[float, Field(gt=0, le=2)], ...], Field(min_length=1)] = (
        0.5,
        0.9,
        1.0,
    )
    forecast_threshold: Annotated[float, Field(gt=0, le=2)] | None = 1.0

    @model_validator(mode="after")
    def _thresholds_ascending(self) -> Self:
        if list(self.thresholds) != sorted(set(self.thresholds)):
            raise ValueError(f"thresholds must be ascending and distinct, got {self.thresholds}")
        return self
