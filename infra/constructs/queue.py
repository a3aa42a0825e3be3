"""An SQS queue with its dead-letter queue: the shape of every queue in this app."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

MAX_RECEIVE_COUNT = 5  # a message that failed 5 times is poison: keep it aside for a person
DLQ_RETENTION = Duration.days(14)  # the SQS maximum: time to read, fix and redrive


class QueueWithDeadLetter(Construct):
    """`queue` redrives to `dead_letter` after `MAX_RECEIVE_COUNT` receives. Both are encrypted
    (SSE-SQS: S3 notifications need no KMS grant for it) and refuse plain HTTP."""

    def __init__(
        self, scope: Construct, construct_id: str, *, visibility_timeout: Duration
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter = sqs.Queue(
            self,
            "DeadLetter",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DLQ_RETENTION,
        )
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
