"""The relabel loop's Lambdas, their queues and their EventBridge rules.

    Batch job state change (SUCCEEDED, FAILED) ──rule──> λ batch_events ──> SQS review ──> λ review
    MTurk notifications ──> SQS answers <──rule── A2I human loop status changes
    SQS answers, and a schedule (the fallback) ──> λ collect (one pass at a time)

Only the workforce in use may send answers: the answers queue lets the MTurk service principal
send with `workforce=mturk`, the A2I rule (EventBridge) with `workforce=a2i`, nobody with
`internal` (staff answer through the CLI; the schedule collects). Failed deliveries and failed
asynchronous invocations land in a dead-letter queue with an alarm, like failed messages.

This construct owns the resources; the stack grants each function its data access.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.alerts import Alerts
from infra.constructs.function import ProjectFunction
from infra.constructs.lambda_package import LambdaPackage
from infra.constructs.queue import QueueWithDeadLetter, dead_letter_queue, visibility_timeout
from shared import env

BATCH_EVENTS_TIMEOUT = Duration.minutes(5)  # a full-catalog re-inference: a Labels scan
BATCH_EVENTS_MEMORY_MB = 1024  # the catalog's label records, held once for the manifest
REVIEW_TIMEOUT = Duration.minutes(10)  # rank the catalog, publish up to 200 tasks
REVIEW_MEMORY_MB = 2048  # every label and out-of-sample prediction, ranked with numpy
COLLECT_TIMEOUT = Duration.minutes(10)  # fetch the answers of every open task, aggregate
COLLECT_MEMORY_MB = 1024
ANSWERS_BATCH_SIZE = 100  # messages are only triggers: one pass serves the whole batch
ANSWERS_WINDOW = Duration.seconds(60)  # a burst of answers becomes one pass
EVENT_RETRY_ATTEMPTS = 4  # EventBridge delivery, then Lambda's own retries of a failed run
EVENT_MAX_AGE = Duration.hours(6)
MIN_EVENT_SOURCE_CONCURRENCY = 2  # the lowest maximum concurrency of an SQS event source
MTURK_PRINCIPAL = "mturk-requester.amazonaws.com"
A2I_STATUS_CHANGE = "SageMaker A2I HumanLoop Status Change"


class ReviewLoop(Construct):
    """`batch_events`, `review`, `collect` (ProjectFunctions) and `review_queue`,
    `answers_queue`, `batch_events_dead_letter`. `environment` is what every handler reads;
    `workforce` the stage's (mturk, a2i, internal) with its settings in `workforce_environment`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        package: LambdaPackage,
        alerts: Alerts,
        environment: Mapping[str, str],
        workforce_environment: Mapping[str, str],
        job_state_changes: events.EventPattern,
        workforce: str,
        a2i_flow_definition_arn: str | None,
        collect_every: Duration,
    ) -> None:
        super().__init__(scope, construct_id)
        self.review_queue = QueueWithDeadLetter(
            self,
            "ReviewQueue",
            visibility_timeout=visibility_timeout(REVIEW_TIMEOUT, Duration.seconds(0)),
        )
        self.answers_queue = QueueWithDeadLetter(
            self,
            "AnswersQueue",
            visibility_timeout=visibility_timeout(COLLECT_TIMEOUT, ANSWERS_WINDOW),
        )
        self.batch_events_dead_letter = dead_letter_queue(
            self,
            "BatchEventsDeadLetter",
            fed_by="the job state change rule's target and batch_events' failed invocations",
        )
        self.batch_events = self._batch_events(package, environment, job_state_changes)
        self.review = self._review(package, {**environment, **workforce_environment})
        self.collect = self._collect(
            package, {**environment, **workforce_environment}, collect_every
        )
        if workforce == "mturk":
            self._allow_mturk_notifications()
        if workforce == "a2i" and a2i_flow_definition_arn:
            self._route_human_loop_events(a2i_flow_definition_arn)
        alerts.alarm_on_dead_letters("ReviewDeadLetters", self.review_queue.dead_letter)
        alerts.alarm_on_dead_letters("AnswersDeadLetters", self.answers_queue.dead_letter)
        alerts.alarm_on_dead_letters("BatchEventsDeadLetters", self.batch_events_dead_letter)

    def _batch_events(
        self,
        package: LambdaPackage,
        environment: Mapping[str, str],
        job_state_changes: events.EventPattern,
    ) -> ProjectFunction:
        """What comes after a job: a review (infer), a re-inference (train), a record (FAILED)."""
        function = ProjectFunction(
            self,
            "BatchEvents",
            package=package,
            handler="lambdas.batch_events.handler",
            description="Acts on finished GPU jobs: review, re-inference, failure records",
            environment={**environment, env.REVIEW_QUEUE_URL: self.review_queue.queue.queue_url},
            timeout=BATCH_EVENTS_TIMEOUT,
            memory_size=BATCH_EVENTS_MEMORY_MB,
        )
        _keep_failed_invocations(function, self.batch_events_dead_letter)
        events.Rule(
            self,
            "JobStateChanges",
            description="dressvision: a GPU job succeeded or failed -> batch_events",
            event_pattern=job_state_changes,
            targets=[
                targets.LambdaFunction(
                    function.function,
                    dead_letter_queue=self.batch_events_dead_letter,
                    retry_attempts=EVENT_RETRY_ATTEMPTS,
                    max_event_age=EVENT_MAX_AGE,
                )
            ],
        )
        return function

    def _review(self, package: LambdaPackage, environment: Mapping[str, str]) -> ProjectFunction:
        """One review per message (after each inference); reviews are rare and idempotent."""
        function = ProjectFunction(
            self,
            "Review",
            package=package,
            handler="lambdas.review.handler",
            description="Publishes relabel tasks for the labels the model doubts most",
            environment=environment,
            timeout=REVIEW_TIMEOUT,
            memory_size=REVIEW_MEMORY_MB,
        )
        function.function.add_event_source(
            event_sources.SqsEventSource(
                self.review_queue.queue,
                batch_size=1,
                # Few reviews at once: concurrent publishers may each spend up to the budget.
                max_concurrency=MIN_EVENT_SOURCE_CONCURRENCY,
                report_batch_item_failures=True,
            )
        )
        return function

    def _collect(
        self, package: LambdaPackage, environment: Mapping[str, str], every: Duration
    ) -> ProjectFunction:
        """Fed by the answers queue and by a schedule, the fallback for lost notifications
        (and the only trigger with the internal workforce)."""
        function = ProjectFunction(
            self,
            "Collect",
            package=package,
            handler="lambdas.collect.handler",
            description="Collects answers, updates labels, starts a retrain when enough changed",
            environment=environment,
            timeout=COLLECT_TIMEOUT,
            memory_size=COLLECT_MEMORY_MB,
            # One pass at a time: a pass aggregates every open task's votes and then decides
            # whether to retrain from the count of changed labels. Two concurrent passes would
            # race on the same tasks (optimistic-lock conflicts, doubled MTurk extra
            # assignments) and could both submit a training job.
            reserved_concurrency=1,
        )
        # A throttled SQS batch (a pass is running) counts as a receive. The visibility timeout
        # (about an hour) and the batching window make five throttles in a row take hours; the
        # messages are only triggers, so one that still reaches the DLQ lost no answer.
        function.function.add_event_source(
            event_sources.SqsEventSource(
                self.answers_queue.queue,
                batch_size=ANSWERS_BATCH_SIZE,
                max_batching_window=ANSWERS_WINDOW,
                max_concurrency=MIN_EVENT_SOURCE_CONCURRENCY,
                report_batch_item_failures=True,
            )
        )
        # A scheduled pass older than the next one is pointless: it expires at the interval.
        _keep_failed_invocations(function, self.answers_queue.dead_letter, max_age=every)
        events.Rule(
            self,
            "CollectSchedule",
            description="dressvision: collect answers even when no notification came",
            schedule=events.Schedule.rate(every),
            targets=[
                targets.LambdaFunction(
                    function.function,
                    dead_letter_queue=self.answers_queue.dead_letter,
                    retry_attempts=EVENT_RETRY_ATTEMPTS,
                    max_event_age=every,
                )
            ],
        )
        return function

    def _allow_mturk_notifications(self) -> None:
        """Mechanical Turk sends AssignmentSubmitted / HITReviewable here (its documented
        policy: the service principal, SendMessage only, over TLS)."""
        queue = self.answers_queue.queue
        queue.add_to_resource_policy(
            iam.PolicyStatement(
                sid="MTurkNotifications",
                principals=[iam.ServicePrincipal(MTURK_PRINCIPAL)],
                actions=["sqs:SendMessage"],
                resources=[queue.queue_arn],
                conditions={"Bool": {"aws:SecureTransport": "true"}},
            )
        )

    def _route_human_loop_events(self, flow_definition_arn: str) -> None:
        """A2I's status changes of this flow definition's loops (Completed, Failed, Stopped)."""
        events.Rule(
            self,
            "HumanLoopStatus",
            description="dressvision: an A2I human loop finished -> the answers queue",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=[A2I_STATUS_CHANGE],
                detail={"flowDefinitionArn": [flow_definition_arn]},
            ),
            targets=[
                targets.SqsQueue(
                    self.answers_queue.queue,
                    dead_letter_queue=self.answers_queue.dead_letter,
                    retry_attempts=EVENT_RETRY_ATTEMPTS,
                    max_event_age=EVENT_MAX_AGE,
                )
            ],
        )


def _keep_failed_invocations(
    function: ProjectFunction, dead_letter: sqs.IQueue, *, max_age: Duration = EVENT_MAX_AGE
) -> None:
    """An EventBridge target's DLQ only gets events that could not be delivered; an event whose
    run failed (after Lambda's two retries) or expired goes here too, instead of vanishing."""
    function.function.configure_async_invoke(
        on_failure=destinations.SqsDestination(dead_letter),
        retry_attempts=2,
        max_event_age=max_age,
    )
