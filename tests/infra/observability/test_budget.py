"""The billing budget per stack. (Cost labels on every resource that takes labels:
tests/infra/test_cluster_security.py checks the whole plan.)"""

from __future__ import annotations

from tests.infra.plans import stack_config
from tools.plan import MOCK_PROJECT_NUMBER

BUDGET = "gcp:billing/budget:Budget"


def test_budget_amount_and_thresholds_come_from_the_stack(plan: dict) -> None:
    wanted = stack_config(plan.stack)["moderation:budget"]
    budget = plan.one(BUDGET)["inputs"]
    assert budget["billingAccount"] == wanted["billingAccount"]
    # No currency: the Budget API rejects any but the billing account's own, which it defaults to.
    assert budget["amount"] == {"specifiedAmount": {"units": str(wanted["monthlyAmountUsd"])}}
    assert budget["thresholdRules"] == [
        *(
            {"thresholdPercent": share, "spendBasis": "CURRENT_SPEND"}
            for share in wanted["thresholds"]
        ),
        {"thresholdPercent": wanted["forecastThreshold"], "spendBasis": "FORECASTED_SPEND"},
    ]


def test_budget_covers_the_stack_project_and_tells_the_alert_channels(plan: dict) -> None:
    budget = plan.one(BUDGET)["inputs"]
    assert budget["budgetFilter"]["projects"] == [f"projects/{MOCK_PROJECT_NUMBER}"]
    channels = {
        f"{c['name']}-id"
        for c in plan.of_type("gcp:monitoring/notificationChannel:NotificationChannel")
    }
    notified = set(budget["allUpdatesRule"]["monitoringNotificationChannels"])
    assert notified and notified <= channels


def test_prod_budget_is_larger_than_dev(plans: dict) -> None:
    amounts = {
        stack: int(plans[stack].one(BUDGET)["inputs"]["amount"]["specifiedAmount"]["units"])
        for stack in plans
    }
    assert amounts["prod"] > amounts["dev"]


def test_budget_calls_bill_a_quota_project(plan: dict) -> None:
    """With user credentials (application-default login) the Billing Budget API refuses calls
    that name no quota project: the budget's provider bills them to the stack's project."""
    budget = plan.one(BUDGET)
    (provider,) = [
        p
        for p in plan.of_type("pulumi:providers:gcp")
        if f"pulumi:providers:gcp::{p['name']}" in budget["dependencies"]
    ]
    project = stack_config(plan.stack)["gcp:project"]
    assert provider["inputs"]["billingProject"] == project
    assert provider["inputs"]["userProjectOverride"] in (True, "true")
