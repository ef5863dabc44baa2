"""Observability and budget settings: a bad value fails before any resource exists, naming the
`moderation:` key a user edits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.infra.plans import config_error


def _observability(config: dict[str, Any]) -> dict[str, Any]:
    return config["moderation:observability"]


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        (
            lambda c: _observability(c)["logSinks"].update(archiveColdlineAfterDays=500),
            "moderation:observability.logSinks",
            "archiveNearlineAfterDays < archiveColdlineAfterDays < archiveRetentionDays",
        ),
        (
            lambda c: _observability(c)["rollout"].update(flagRateDrift=1.5),
            "moderation:observability.rollout.flagRateDrift",
            "less than 1",
        ),
        (
            lambda c: _observability(c)["rollout"].update(p99LatencyRatio=0.9),
            "moderation:observability.rollout.p99LatencyRatio",
            "greater than 1",
        ),
        (
            lambda c: _observability(c)["slo"].update(availabilityGoal=1.0),
            "moderation:observability.slo.availabilityGoal",
            "less than or equal to 0.9999",
        ),
        (
            lambda c: _observability(c)["alerts"].update(errorRatio=2),
            "moderation:observability.alerts.errorRatio",
            "less than 1",
        ),
        (
            lambda c: _observability(c)["notificationChannels"][0].update(emailAddress="oncall"),
            "moderation:observability.notificationChannels.0.emailAddress",
            "should match pattern",
        ),
        (
            lambda c: [
                channel.update(severities=["WARNING"])
                for channel in _observability(c)["notificationChannels"]
            ],
            "moderation:observability",
            "at least one notification channel must receive CRITICAL alerts",
        ),
        (
            lambda c: c["moderation:budget"].update(thresholds=[0.9, 0.5]),
            "moderation:budget",
            "thresholds must be ascending and distinct",
        ),
        (
            lambda c: c["moderation:budget"].update(billingAccount="my-account"),
            "moderation:budget.billingAccount",
            "should match pattern",
        ),
        (
            lambda c: c.pop("moderation:budget"),
            "moderation:budget",
            "is required but missing",
        ),
    ],
    ids=[
        "lifecycle-order",
        "rollout-drift",
        "rollout-p99-ratio",
        "slo-goal",
        "error-ratio",
        "email",
        "nobody-paged",
        "thresholds",
        "billing-account",
        "budget-missing",
    ],
)
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_bad_observability_setting_names_its_key(
    stack: str, change: Callable[[dict[str, Any]], None], key: str, problem: str
) -> None:
    message = config_error(stack, change)
    (line,) = [line.strip() for line in message.splitlines() if problem in line]
    assert line.startswith(f"{key}:")
