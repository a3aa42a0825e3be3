"""Where operators hear about trouble: one encrypted SNS topic, alarms and rules that feed it.

The topic's key is a customer-managed KMS key (about USD 1/month) because the AWS-managed
`aws/sns` key cannot be used by CloudWatch alarms or EventBridge: its policy cannot be edited to
let them in, and their messages would be dropped silently.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from shared import env

ALARM_PERIOD = Duration.minutes(5)
BUDGET_PERIOD = Duration.hours(1)
BUDGET_WARNING_FRACTION = 0.2  # alarm once less than a fifth of the cap is left
PUBLISHERS = ("cloudwatch.amazonaws.com", "events.amazonaws.com")


class Alerts(Construct):
    """`topic`, an e-mail subscription when `email` is given, and helpers that add alarms."""

    def __init__(self, scope: Construct, construct_id: str, *, email: str | None) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description="dressvision alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,  # it guards transient notifications only
        )
        for service in PUBLISHERS:
            self.key.grant(iam.ServicePrincipal(service), "kms:Decrypt", "kms:GenerateDataKey*")
        self.topic = sns.Topic(
            self, "Topic", display_name="dressvision alarms", master_key=self.key, enforce_ssl=True
        )
        if email:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))

    def alarm_on_dead_letters(self, construct_id: str, dead_letter: sqs.IQueue) -> None:
        """Alarm as soon as one message sits in `dead_letter`: each one is work that failed
        `maxReceiveCount` times and waits for a person (fix, then redrive from the console)."""
        alarm = dead_letter.metric_approximate_number_of_messages_visible(
            period=ALARM_PERIOD, statistic=cloudwatch.Stats.MAXIMUM
        ).create_alarm(
            self,
            construct_id,
            alarm_description=f"Messages in the dead-letter queue {construct_id}: see its DLQ",
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        alarm.add_ok_action(cw_actions.SnsAction(self.topic))

    def alarm_on_budget(self, construct_id: str, *, cap_usd: float) -> cloudwatch.Alarm:
        """Alarm when the review and collect Lambdas report (metric BudgetLeftUSD, emitted in
        embedded metric format) that less than BUDGET_WARNING_FRACTION of the workforce's
        budget cap is left: publishing stops at the cap, so people should raise it or accept
        that the relabel loop pauses."""
        threshold = round(cap_usd * BUDGET_WARNING_FRACTION, 2)
        alarm = cloudwatch.Metric(
            namespace=env.METRICS_NAMESPACE,
            metric_name=env.METRIC_BUDGET_LEFT_USD,
            dimensions_map={"service": env.METRICS_SERVICE},
            statistic=cloudwatch.Stats.MINIMUM,
            period=BUDGET_PERIOD,
        ).create_alarm(
            self,
            construct_id,
            alarm_description=(
                f"Less than USD {threshold} of the USD {cap_usd} relabeling budget is left: "
                "raise dressvision:budgetCapUsd or let publishing stop at the cap"
            ),
            threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,  # no spend, no news
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        return alarm

    def notify_failed_jobs(
        self, construct_id: str, failed_jobs: events.EventPattern
    ) -> events.Rule:
        """Publish each job that `failed_jobs` matches (`GpuJobs.state_changes("FAILED")`)."""
        return events.Rule(
            self,
            construct_id,
            description="dressvision: a Batch job failed",
            event_pattern=failed_jobs,
            targets=[
                targets.SnsTopic(
                    self.topic,
                    message=events.RuleTargetInput.from_text(
                        f"Batch job {events.EventField.from_path('$.detail.jobName')} "
                        f"({events.EventField.from_path('$.detail.jobId')}) failed: "
                        f"{events.EventField.from_path('$.detail.statusReason')}"
                    ),
                )
            ],
        )
