"""Cost controls: a monthly billing budget on the stack's project with notification thresholds.

The Budget API takes the amount in the billing account's own currency and rejects any other, so
no currency is named: the amount is read in the billing account's currency. With user
credentials (`gcloud auth application-default login`) the Billing Budget API also needs a quota
project: the budget goes through a provider that bills its calls to the stack's project
(`billing_project` + `user_project_override`), which needs the Billing Budget API on in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.config import BudgetConfig


@dataclass(frozen=True)
class BudgetArgs:
    config: BudgetConfig
    project: str
    environment: str
    notification_channels: Sequence[pulumi.Input[str]]
    """Monitoring channels told at each threshold, besides the billing account's admins."""


class ProjectBudget(pulumi.ComponentResource):
    """Alerts at each share of the monthly amount spent, and when the forecast overshoots."""

    def __init__(
        self, name: str, args: BudgetArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("moderation:observability:ProjectBudget", name, None, opts)
        config = args.config
        project = gcp.organizations.get_project_output(project_id=args.project)
        # Its own provider: the component's depends_on (the APIs it calls) must be its too.
        billing_api = gcp.Provider(
            f"{name}-billing",
            project=args.project,
            billing_project=args.project,
            user_project_override=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=opts.depends_on if opts else None),
        )
        rules = [
            gcp.billing.BudgetThresholdRuleArgs(
                threshold_percent=share, spend_basis="CURRENT_SPEND"
            )
            for share in config.thresholds
        ]
        if config.forecast_threshold is not None:
            rules.append(
                gcp.billing.BudgetThresholdRuleArgs(
                    threshold_percent=config.forecast_threshold, spend_basis="FORECASTED_SPEND"
                )
            )
        budget = gcp.billing.Budget(
            f"{name}-budget",
            billing_account=config.billing_account,
            display_name=f"moderation {args.environment} monthly",
            budget_filter=gcp.billing.BudgetBudgetFilterArgs(
                projects=[pulumi.Output.concat("projects/", project.number)],
                credit_types_treatment="INCLUDE_ALL_CREDITS",
            ),
            amount=gcp.billing.BudgetAmountArgs(
                specified_amount=gcp.billing.BudgetAmountSpecifiedAmountArgs(
                    units=str(config.monthly_amount_usd)
                )
            ),
            threshold_rules=rules,
            all_updates_rule=gcp.billing.BudgetAllUpdatesRuleArgs(
                monitoring_notification_channels=list(args.notification_channels),
                disable_default_iam_recipients=False,
            ),
            opts=pulumi.ResourceOptions(parent=self, provider=billing_api),
        )
        self.budget_name = budget.name
        self.register_outputs({"budget": budget.name})
