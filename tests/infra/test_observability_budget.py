"""The billing budget per stack, and labels on every resource of the plan that takes them."""

from __future__ import annotations

import importlib
import inspect
import warnings
from functools import cache

import pytest

from infra.plan import MOCK_PROJECT_NUMBER
from tests.infra.conftest import stack_config

BUDGET = "gcp:billing/budget:Budget"
LABEL_ARGUMENTS = {
    "labels": "labels",
    "user_labels": "userLabels",
    "resource_labels": "resourceLabels",
}
NOT_RESOURCE_LABELS = {("gcp:monitoring/notificationChannel:NotificationChannel", "labels")}
"""A channel's `labels` configure it (`email_address`); its resource labels are `user_labels`."""


def test_budget_amount_and_thresholds_come_from_the_stack(plan: dict) -> None:
    wanted = stack_config(plan.stack)["moderation:budget"]
    budget = plan.one(BUDGET)["inputs"]
    assert budget["billingAccount"] == wanted["billingAccount"]
    assert budget["amount"] == {
        "specifiedAmount": {"currencyCode": "USD", "units": str(wanted["monthlyAmountUsd"])}
    }
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


@cache
def _label_arguments(type_token: str) -> set[str]:
    """Which label arguments (`labels`, `user_labels`, `resource_labels`) a GCP resource takes,
    read from the pulumi_gcp class itself."""
    module_path, class_name = type_token.split(":")[1:]
    with warnings.catch_warnings():  # importing a pulumi_gcp package warns about deprecated names
        warnings.simplefilter("ignore", DeprecationWarning)
        module = importlib.import_module(f"pulumi_gcp.{module_path.split('/')[0]}")
        resource_class = getattr(module, class_name)
    parameters = inspect.signature(resource_class._internal_init).parameters
    return {
        name
        for name in LABEL_ARGUMENTS
        if name in parameters and (type_token, name) not in NOT_RESOURCE_LABELS
    }


def test_every_gcp_resource_that_takes_labels_carries_the_cost_labels(plan: dict) -> None:
    config = stack_config(plan.stack)
    expected = {
        "environment": config["moderation:environment"],
        "app": "moderation",
        "cost-center": config["moderation:costCenter"],
    }
    checked = 0
    missing = []
    for resource in plan["resources"]:
        if not resource["type"].startswith("gcp:"):
            continue
        for argument in _label_arguments(resource["type"]):
            labels = resource["inputs"].get(LABEL_ARGUMENTS[argument]) or {}
            checked += 1
            if {key: labels.get(key) for key in expected} != expected:
                missing.append(f"{resource['type']} {resource['name']}.{argument}")
    assert checked >= 15
    assert not missing, "resources without the cost labels:\n" + "\n".join(missing)


@pytest.mark.parametrize(
    ("type_token", "arguments"),
    [
        ("gcp:storage/bucket:Bucket", {"labels"}),
        ("gcp:monitoring/alertPolicy:AlertPolicy", {"user_labels"}),
        ("gcp:container/cluster:Cluster", {"resource_labels"}),
        ("gcp:logging/projectSink:ProjectSink", set()),
        ("gcp:monitoring/notificationChannel:NotificationChannel", {"user_labels"}),
    ],
)
def test_label_arguments_are_read_from_the_provider_classes(
    type_token: str, arguments: set[str]
) -> None:
    assert _label_arguments(type_token) == arguments
