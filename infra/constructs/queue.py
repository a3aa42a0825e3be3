"""An SQS queue with its dead-letter queue: the shape of every queue in this app."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.nag import acknowledge

MAX_RECEIVE_COUNT = 5  # a message that failed 5 times is poison: keep it aside for a person
DLQ_RETENTION = Duration.days(14)  # the SQS maximum: time to read, fix and redrive


def visibility_timeout(function_timeout: Duration, batching_window: Duration) -> Duration:
    """AWS guidance for an SQS event source: at least six times the function's timeout, plus
    the batching window, so a message is never visible again while a retry may still run."""
    return Duration.seconds(6 * function_timeout.to_seconds() + batching_window.to_seconds())


def dead_letter_queue(
    scope: Construct, construct_id: str, *, fed_by: str | None = None
) -> sqs.Queue:
    """An encrypted, SSL-only queue that keeps failed work 14 days. `fed_by` says what sends to
    it when that is not an SQS redrive policy (an EventBridge target, a Lambda destination):
    cdk-nag then cannot see that it is a dead-letter queue and is told why."""
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=DLQ_RETENTION,
    )
    if fed_by:
        acknowledge(
            queue,
            "AwsSolutions-SQS3",
            f"This is a dead-letter queue itself: {fed_by} send their failed events here.",
        )
    return queue


class QueueWithDeadLetter(Construct):
    """`queue` redrives to `dead_letter` after `MAX_RECEIVE_COUNT` receives. Both are encrypted
    (SSE-SQS: S3 notifications need no KMS grant for it) and refuse plain HTTP."""

    def __init__(
        self, scope: Construct, construct_id: str, *, visibility_timeout: Duration
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter = dead_letter_queue(self, "DeadLetter")
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=visibility_timeout,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter, max_receive_count=MAX_RECEIVE_COUNT
            ),
        )
