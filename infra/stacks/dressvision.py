"""The whole deployment in one stack: storage, the ingest pipeline, GPU jobs, the relabel
loop, alerts.

Constructs own their resources; this class decides what talks to what and grants exactly that.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, Size, Stack, Tags
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as event_sources
from constructs import Construct

from infra.constructs.alerts import Alerts
from infra.constructs.buckets import DataBuckets
from infra.constructs.function import ProjectFunction
from infra.constructs.gpu_jobs import GpuJobs
from infra.constructs.lambda_package import LambdaPackage
from infra.constructs.network import JobNetwork
from infra.constructs.queue import QueueWithDeadLetter, dead_letter_queue, visibility_timeout
from infra.constructs.review_loop import ReviewLoop
from infra.constructs.tables import DataTables
from infra.constructs.vectors import SimilarityVectors
from infra.constructs.web_api import WebApi
from infra.grants import RoleGrants
from infra.settings import StageSettings
from shared import env
from shared.keys import (
    A2I_OUTPUT_PREFIX,
    CATALOG_PREFIX,
    CHECKPOINTS_PREFIX,
    EMBEDDINGS_PREFIX,
    FAILED_JOBS_PREFIX,
    FIRST_TRAINING_KEY,
    MANIFEST_PREFIX,
    MODELS_PREFIX,
    PENDING_INFERENCE_PREFIX,
    SNAPSHOT_PREFIX,
    TRAIN_REQUEST_KEY,
    reinfer_markers_pattern,
    review_thresholds_pattern,
)

INGEST_TIMEOUT = Duration.minutes(3)  # a batch of 50 photos: HEAD + GET + decode check each
FLUSH_TIMEOUT = Duration.minutes(5)  # lists and reads the window's pieces, writes manifests
FLUSH_MEMORY_MB = 512
INGEST_MEMORY_MB = 1024  # decoding a 50-megapixel photo takes ~150 MB; 1 GB also buys CPU
SIMILAR_TIMEOUT = Duration.seconds(10)  # one GetVectors and one QueryVectors


class DressvisionStack(Stack):
    """Environment-agnostic on purpose: nothing here needs an account lookup at synth."""

    def __init__(
        self, scope: Construct, construct_id: str, *, settings: StageSettings, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings
        Tags.of(self).add("project", "dressvision")
        Tags.of(self).add("stage", settings.stage)
        self.buckets = DataBuckets(self, "Buckets", name_prefix=settings.name_prefix)
        self.tables = DataTables(self, "Tables")
        self.vectors = SimilarityVectors(self, "Vectors", name_prefix=settings.name_prefix)
        self.alerts = Alerts(self, "Alerts", email=settings.alarm_email)
        self.network = JobNetwork(self, "Network", flow_log_bucket=self.buckets.logs)
        self.jobs = self._gpu_jobs()
        self.package = LambdaPackage(self, "LambdaPackage")
        self.ingest_queue, self.ingest = self._ingest()
        self.flush = self._inference_window()
        self.loop = self._review_loop()
        self._grant_jobs()
        self._grant_review_loop()
        self.web = self._web()
        self.similar = self._similarity()
        self.alerts.notify_failed_jobs("FailedJobs", self.jobs.state_changes("FAILED"))
        self._outputs()

    def data_environment(self) -> dict[str, str]:
        """The settings every handler and job reads (`shared.env.Settings.from_env`)."""
        return {
            env.BACKEND: "aws",
            env.CATALOG_BUCKET: self.buckets.catalog.bucket_name,
            env.ARTIFACTS_BUCKET: self.buckets.artifacts.bucket_name,
            env.LABELS_TABLE: self.tables.labels.table_name,
            env.PREDICTIONS_TABLE: self.tables.predictions.table_name,
            env.TASKS_TABLE: self.tables.tasks.table_name,
            env.INFER_SHARD_SIZE: str(self.settings.infer_shard_size),
            env.INFER_WINDOW_IMAGES: str(self.settings.infer_window_images),
            env.INFER_WINDOW_SECONDS: str(60 * self.settings.infer_window_minutes),
            env.VECTOR_BUCKET: self.vectors.bucket_name,
            **self.model_environment(),
        }

    def model_environment(self) -> dict[str, str]:
        """The model settings: read by whoever submits a job (the infer job's batch size, the
        training recipe's sizes: `shared.training`, `shared.inference`) and by the train job
        itself (a job submitted by hand, without options, trains the same recipe)."""
        s = self.settings
        return {
            env.INFER_BATCH_SIZE: str(s.infer_batch_size),
            env.IMAGE_SIZE: str(s.image_size),
            env.TRAIN_BATCH_SIZE: str(s.train_batch_size),
            env.TRAIN_WEIGHTS: s.train_weights,
        }

    def workforce_environment(self) -> dict[str, str]:
        """What `review` and `collect` need to build the stage's workforce."""
        s = self.settings
        variables = {
            env.WORKFORCE: s.workforce,
            env.MAX_ASSIGNMENTS: str(s.max_assignments),
            env.ASK_STEP: str(s.ask_step),
            env.MTURK_PRODUCTION: "true" if s.mturk_production else "false",
            env.MTURK_BUDGET_USD: str(s.budget_cap_usd),
            env.RETRAIN_THRESHOLD: str(s.retrain_threshold),
            env.LOOP_MIN_CHANGES: str(s.loop_min_changes),
            env.LOOP_HOLDOUT_FOLDS: str(s.loop_holdout_folds),
            env.REVIEW_DOUBT: str(s.review_doubt),
            env.MIN_WORKER_ACCURACY: str(s.min_worker_accuracy),
        }
        if s.a2i_flow_definition_arn:
            variables[env.A2I_FLOW_DEFINITION_ARN] = s.a2i_flow_definition_arn
        return variables

    def _gpu_jobs(self) -> GpuJobs:
        s = self.settings
        return GpuJobs(
            self,
            "GpuJobs",
            vpc=self.network.vpc,
            subnets=self.network.subnets,
            security_group=self.network.security_group,
            name_prefix=s.name_prefix,
            instance_types=s.gpu_instance_types,
            spot=s.spot,
            max_vcpus=s.max_vcpus,
            job_vcpus=s.job_vcpus,
            job_memory=Size.gibibytes(s.job_memory_gib),
            shared_memory=Size.gibibytes(s.shared_memory_gib),
            timeouts={
                "infer": Duration.hours(s.infer_timeout_hours),
                "train": Duration.hours(s.train_timeout_hours),
            },
            environment=self.data_environment(),
        )

    def _ingest(self) -> tuple[QueueWithDeadLetter, ProjectFunction]:
        """S3 `catalog/` uploads -> SQS -> `lambdas.ingest.handler` -> Labels, manifest, job."""
        s = self.settings
        window = Duration.seconds(s.ingest_max_batching_seconds)
        queue = QueueWithDeadLetter(
            self, "IngestQueue", visibility_timeout=visibility_timeout(INGEST_TIMEOUT, window)
        )
        ingest = ProjectFunction(
            self,
            "Ingest",
            package=self.package,
            handler="lambdas.ingest.handler",
            description="Registers uploaded catalog photos and submits their inference",
            environment={
                **self.data_environment(),
                **self.jobs.submission_environment(),
                env.FIRST_TRAIN_MIN_IMAGES: str(s.first_train_min_images),
            },
            timeout=INGEST_TIMEOUT,
            memory_size=INGEST_MEMORY_MB,
        )
        # max_concurrency on the event source, not reserved concurrency on the function:
        # reserved concurrency throttles the pollers, and throttled messages count as receives
        # (they would reach the DLQ without ever running).
        ingest.function.add_event_source(
            event_sources.SqsEventSource(
                queue.queue,
                batch_size=s.ingest_batch_size,
                max_batching_window=window,
                max_concurrency=s.ingest_max_concurrency,
                report_batch_item_failures=True,
            )
        )
        self.buckets.notify_catalog_uploads(queue.queue)
        self.alerts.alarm_on_dead_letters("IngestDeadLetters", queue.dead_letter)

        grants = RoleGrants(ingest.role)
        grants.objects(self.buckets.catalog, CATALOG_PREFIX, read=True)
        # Put (no delete): copying the last good version back over a bad re-upload.
        grants.objects(self.buckets.catalog, CATALOG_PREFIX, write=True)
        grants.objects(self.buckets.artifacts, MODELS_PREFIX, read=True)  # current.json
        grants.objects(self.buckets.artifacts, PENDING_INFERENCE_PREFIX, write=True)
        grants.table(self.tables.labels, write=True)
        grants.table(self.tables.predictions)  # what a redelivery still has to predict
        if s.first_train_min_images > 0:
            # A fresh stack's first training: claimed by creating the key (deleted again if
            # the submission fails), then submitted.
            grants.keys(self.buckets.artifacts, FIRST_TRAINING_KEY, read=True, write=True)
            self.jobs.grant_submit(ingest.role, "train")
        self.vectors.grant_delete(ingest.role)  # an image that became invalid
        return queue, ingest

    def _inference_window(self) -> ProjectFunction:
        """A schedule -> `lambdas.flush.handler`: the uploads ingest queued during the window
        become one array job per `infer_window_images` images. One flush at a time; a failed
        one (after Lambda's retries) lands in a dead-letter queue with an alarm, and the next
        window submits the same images (nothing is deleted before the submission succeeded)."""
        s = self.settings
        every = Duration.minutes(s.infer_window_minutes)
        flush = ProjectFunction(
            self,
            "InferenceWindow",
            package=self.package,
            handler="lambdas.flush.handler",
            description="Submits the uploads pending inference as few large array jobs",
            environment={**self.data_environment(), **self.jobs.submission_environment()},
            timeout=FLUSH_TIMEOUT,
            memory_size=FLUSH_MEMORY_MB,
            reserved_concurrency=1,  # two flushes would submit the same pieces twice
        )
        dead_letter = dead_letter_queue(
            self, "InferenceWindowDeadLetters", fed_by="the inference window's failed flushes"
        )
        flush.function.configure_async_invoke(
            on_failure=destinations.SqsDestination(dead_letter),
            retry_attempts=2,
            max_event_age=every,
        )
        events.Rule(
            self,
            "InferenceWindowSchedule",
            description="dressvision: submit the uploads pending inference",
            schedule=events.Schedule.rate(every),
            targets=[
                targets.LambdaFunction(
                    flush.function,
                    dead_letter_queue=dead_letter,
                    retry_attempts=2,
                    max_event_age=every,
                )
            ],
        )
        self.alerts.alarm_on_dead_letters("InferenceWindowFailures", dead_letter)
        grants = RoleGrants(flush.role)
        grants.objects(self.buckets.artifacts, PENDING_INFERENCE_PREFIX, read=True, write=True)
        grants.objects(self.buckets.artifacts, MODELS_PREFIX, read=True)  # current versions
        grants.objects(self.buckets.artifacts, MANIFEST_PREFIX, read=True, write=True)
        self.jobs.grant_submit(flush.role, "infer")
        return flush

    def _review_loop(self) -> ReviewLoop:
        """batch_events, review and collect with their queues and rules."""
        s = self.settings
        loop = ReviewLoop(
            self,
            "ReviewLoop",
            package=self.package,
            alerts=self.alerts,
            environment={**self.data_environment(), **self.jobs.submission_environment()},
            workforce_environment=self.workforce_environment(),
            job_state_changes=self.jobs.state_changes("SUCCEEDED", "FAILED"),
            workforce=s.workforce,
            a2i_flow_definition_arn=s.a2i_flow_definition_arn,
            collect_every=Duration.minutes(s.collect_every_minutes),
        )
        if s.workforce == "mturk":
            # MTurk's Notification.Destination for the SQS transport is the queue URL.
            # Only review registers the HIT type's notifications.
            loop.review.function.add_environment(
                env.MTURK_NOTIFICATION_QUEUE_URL, loop.answers_queue.queue.queue_url
            )
            self.alerts.alarm_on_budget("BudgetAlarm", cap_usd=s.budget_cap_usd)
        return loop

    def _grant_review_loop(self) -> None:
        """Each function of the loop gets what its handler calls, and its workforce's API."""
        artifacts, tables, loop = self.buckets.artifacts, self.tables, self.loop
        batch_events = RoleGrants(loop.batch_events.role)
        batch_events.objects(artifacts, MODELS_PREFIX, read=True)  # current.json, markers
        batch_events.keys(artifacts, reinfer_markers_pattern(), write=True)
        batch_events.objects(artifacts, MANIFEST_PREFIX, write=True)
        batch_events.objects(artifacts, FAILED_JOBS_PREFIX, write=True)
        batch_events.table(tables.labels)  # the whole catalog, for a re-inference
        loop.review_queue.queue.grant_send_messages(loop.batch_events.role)
        self.jobs.grant_submit(loop.batch_events.role, "infer")

        review = RoleGrants(loop.review.role)
        review.objects(self.buckets.catalog, CATALOG_PREFIX, read=True)  # presigned photo URLs
        review.objects(artifacts, MODELS_PREFIX, read=True)  # the current model's version
        review.table(tables.labels)
        review.table(tables.predictions)  # by_model: the model's out-of-sample predictions
        review.table(tables.tasks, write=True)
        review.objects(artifacts, MANIFEST_PREFIX, read=True)  # the photos a job tagged
        review.keys(artifacts, TRAIN_REQUEST_KEY, read=True)  # what the last round changed
        review.keys(artifacts, review_thresholds_pattern(), write=True)  # the round's thresholds

        collect = RoleGrants(loop.collect.role)
        collect.table(tables.tasks, write=True)
        collect.table(tables.labels, write=True)  # decided labels, with their label events
        collect.objects(artifacts, SNAPSHOT_PREFIX, read=True)  # when training last started
        collect.keys(artifacts, TRAIN_REQUEST_KEY, read=True)  # read and put; never delete
        collect.keys(artifacts, TRAIN_REQUEST_KEY, write=True)
        self.jobs.grant_submit(loop.collect.role, "train")

        workforce = self.settings.workforce
        if workforce == "mturk":
            keep_out = ("ListQualificationTypes", "CreateQualificationType")
            keep_out = keep_out if self.settings.min_worker_accuracy > 0 else ()
            review.mturk(
                "CreateHITType",
                "CreateHITWithHITType",
                "GetAccountBalance",
                "UpdateNotificationSettings",
                "ListHITs",
                *keep_out,  # the HIT type requires the absence of the low-accuracy qualification
            )
            collect.mturk(
                "ListAssignmentsForHIT",
                "ApproveAssignment",
                "CreateAdditionalAssignmentsForHIT",
                "UpdateExpirationForHIT",
                "GetAccountBalance",  # extra assignments are checked against the balance too
                *(("AssociateQualificationWithWorker", *keep_out) if keep_out else ()),
            )
        flow_definition = self.settings.a2i_flow_definition
        if workforce == "a2i" and flow_definition:
            review.human_loops(flow_definition, start=True)
            collect.human_loops(flow_definition, start=True, describe=True)  # more answers
            collect.objects(artifacts, A2I_OUTPUT_PREFIX, read=True)

    def _web(self) -> WebApi:
        """The quality web app; crowd tasks' photo links point at it (valid a task's lifetime)."""
        web = WebApi(
            self,
            "Web",
            package=self.package,
            name_prefix=self.settings.name_prefix,
            # The queue's name too: Settings requires it on AWS (the app never submits a job).
            environment={**self.data_environment(), **self.jobs.submission_environment()},
            catalog=self.buckets.catalog,
            artifacts=self.buckets.artifacts,
            labels=self.tables.labels,
            predictions=self.tables.predictions,
            tasks=self.tables.tasks,
        )
        self.loop.review.function.add_environment(env.WEB_BASE_URL, web.api.api_endpoint)
        self.loop.review.function.add_environment(env.WEB_SECRET_ARN, web.secret.secret_arn)
        web.secret.grant_read(self.loop.review.role)
        self.vectors.grant_query(web.function.role)  # the image page shows similar dresses
        return web

    def _grant_jobs(self) -> None:
        """Each job reads and writes only its own prefixes and tables."""
        artifacts, catalog = self.buckets.artifacts, self.buckets.catalog
        infer = RoleGrants(self.jobs.job_roles["infer"])
        infer.objects(catalog, CATALOG_PREFIX, read=True)
        infer.objects(artifacts, MANIFEST_PREFIX, read=True)
        infer.objects(artifacts, MODELS_PREFIX, read=True)
        infer.objects(artifacts, EMBEDDINGS_PREFIX, write=True)
        infer.table(self.tables.labels)  # known dress boxes
        infer.table(self.tables.predictions, write=True)
        self.vectors.grant_write(infer.role)  # embeddings of what it tags

        train = RoleGrants(self.jobs.job_roles["train"])
        train.objects(catalog, CATALOG_PREFIX, read=True)
        for prefix in (MODELS_PREFIX, SNAPSHOT_PREFIX, CHECKPOINTS_PREFIX):
            train.objects(artifacts, prefix, read=True, write=True)  # checkpoints get deleted
        train.table(self.tables.labels)
        train.table(self.tables.predictions, write=True)  # per-image evaluation

    def _similarity(self) -> ProjectFunction:
        """`lambdas.similar.handler`: similarity queries for the web app's API (no torch)."""
        similar = ProjectFunction(
            self,
            "Similar",
            package=self.package,
            handler="lambdas.similar.handler",
            description="Dresses like a catalog image, from the S3 Vectors index",
            # The job names complete the settings; this role may not submit anything.
            environment={**self.data_environment(), **self.jobs.submission_environment()},
            timeout=SIMILAR_TIMEOUT,
            memory_size=512,
        )
        self.vectors.grant_query(similar.role)
        return similar

    def _outputs(self) -> None:
        outputs = {
            "CatalogBucket": self.buckets.catalog.bucket_name,
            "ArtifactsBucket": self.buckets.artifacts.bucket_name,
            "LabelsTable": self.tables.labels.table_name,
            "PredictionsTable": self.tables.predictions.table_name,
            "JobQueue": self.jobs.job_queue.job_queue_arn,
            "IngestFunction": self.ingest.function.function_name,
            "InferenceWindowFunction": self.flush.function.function_name,
            "IngestLogGroup": self.ingest.log_group.log_group_name,
            "JobLogGroup": self.jobs.log_group.log_group_name,
            "IngestDeadLetterQueue": self.ingest_queue.dead_letter.queue_url,
            "BatchEventsFunction": self.loop.batch_events.function.function_name,
            "ReviewFunction": self.loop.review.function.function_name,
            "CollectFunction": self.loop.collect.function.function_name,
            "BatchEventsLogGroup": self.loop.batch_events.log_group.log_group_name,
            "ReviewLogGroup": self.loop.review.log_group.log_group_name,
            "CollectLogGroup": self.loop.collect.log_group.log_group_name,
            "ReviewQueue": self.loop.review_queue.queue.queue_url,
            "AnswersQueue": self.loop.answers_queue.queue.queue_url,
            "ReviewDeadLetterQueue": self.loop.review_queue.dead_letter.queue_url,
            "AnswersDeadLetterQueue": self.loop.answers_queue.dead_letter.queue_url,
            "BatchEventsDeadLetterQueue": self.loop.batch_events_dead_letter.queue_url,
            "AlarmTopic": self.alerts.topic.topic_arn,
            "WebUrl": self.web.api.api_endpoint,
            "WebUserPool": self.web.user_pool.user_pool_id,
            "WebSignInDomain": self.web.sign_in_domain,
            "WebFunction": self.web.function.function.function_name,
            "VectorBucket": self.vectors.bucket_name,
            "SimilarFunction": self.similar.function.function_name,
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
