"""The whole deployment in one stack: storage, the ingest pipeline, GPU jobs, alerts.

Constructs own their resources; this class decides what talks to what and grants exactly that.

Adding the Lambdas of the review loop (a later issue) follows `_ingest`:
- `batch_events`: `ProjectFunction(handler="lambdas.batch_events.handler")` as a second target
  of an `events.Rule` on "Batch Job State Change" for `self.jobs.job_queue` (SUCCEEDED and
  FAILED), writing to a `QueueWithDeadLetter` "Review" queue (`queue.grant_send_messages`).
- `review`: an `SqsEventSource` on the review queue; `RoleGrants(role).table(self.tables.tasks,
  write=True)`, reads of labels/predictions, the workforce's API (MTurk or A2I) by action.
- `collect`: an answers `QueueWithDeadLetter` (the MTurk notification queue), its event source,
  and `self.jobs.grant_submit(role, "train")` to start a retrain after
  `settings.retrain_threshold` changed labels. Every new DLQ gets `alerts.alarm_on_dead_letters`.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, Size, Stack, Tags
from aws_cdk import aws_lambda_event_sources as event_sources
from constructs import Construct

from infra.constructs.alerts import Alerts
from infra.constructs.buckets import DataBuckets
from infra.constructs.function import ProjectFunction
from infra.constructs.gpu_jobs import GpuJobs
from infra.constructs.lambda_package import LambdaPackage
from infra.constructs.network import JobNetwork
from infra.constructs.queue import QueueWithDeadLetter
from infra.constructs.tables import DataTables
from infra.grants import RoleGrants
from infra.settings import StageSettings
from shared import env
from shared.keys import (
    CATALOG_PREFIX,
    EMBEDDINGS_PREFIX,
    MANIFEST_PREFIX,
    MODELS_PREFIX,
    SNAPSHOT_PREFIX,
)

INGEST_TIMEOUT = Duration.minutes(3)  # a batch of 50 photos: HEAD + GET + decode check each
INGEST_MEMORY_MB = 1024  # decoding a 50-megapixel photo takes ~150 MB; 1 GB also buys CPU
# Training checkpoints (batch_jobs/facets/checkpoint.py CHECKPOINT_PREFIX lives under it).
CHECKPOINTS_PREFIX = "checkpoints/"


def visibility_timeout(function_timeout: Duration, batching_window: Duration) -> Duration:
    """AWS guidance for an SQS event source: at least six times the function's timeout, plus
    the batching window, so a message is never visible again while a retry may still run."""
    return Duration.seconds(6 * function_timeout.to_seconds() + batching_window.to_seconds())


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
        self.alerts = Alerts(self, "Alerts", email=settings.alarm_email)
        self.network = JobNetwork(self, "Network", flow_log_bucket=self.buckets.logs)
        self.jobs = self._gpu_jobs()
        self.package = LambdaPackage(self, "LambdaPackage")
        self.ingest_queue, self.ingest = self._ingest()
        self._grant_jobs()
        self.alerts.notify_failed_jobs("FailedJobs", self.jobs.job_queue)
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
        }

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
            environment={
                **self.data_environment(),
                env.INFER_BATCH_SIZE: str(s.infer_batch_size),
                env.IMAGE_SIZE: str(s.image_size),
            },
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
            environment={**self.data_environment(), **self.jobs.submission_environment()},
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
        grants.objects(self.buckets.artifacts, MODELS_PREFIX, read=True)  # current.json
        grants.objects(self.buckets.artifacts, MANIFEST_PREFIX, write=True)
        grants.table(self.tables.labels, write=True)
        grants.table(self.tables.predictions)  # what a redelivery still has to predict
        self.jobs.grant_submit(ingest.role, "infer")
        return queue, ingest

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

        train = RoleGrants(self.jobs.job_roles["train"])
        train.objects(catalog, CATALOG_PREFIX, read=True)
        for prefix in (MODELS_PREFIX, SNAPSHOT_PREFIX, CHECKPOINTS_PREFIX):
            train.objects(artifacts, prefix, read=True, write=True)  # checkpoints get deleted
        train.table(self.tables.labels)
        train.table(self.tables.predictions, write=True)  # per-image evaluation

    def _outputs(self) -> None:
        outputs = {
            "CatalogBucket": self.buckets.catalog.bucket_name,
            "ArtifactsBucket": self.buckets.artifacts.bucket_name,
            "LabelsTable": self.tables.labels.table_name,
            "PredictionsTable": self.tables.predictions.table_name,
            "JobQueue": self.jobs.job_queue.job_queue_arn,
            "IngestFunction": self.ingest.function.function_name,
            "IngestLogGroup": self.ingest.log_group.log_group_name,
            "JobLogGroup": self.jobs.log_group.log_group_name,
            "IngestDeadLetterQueue": self.ingest_queue.dead_letter.queue_url,
            "AlarmTopic": self.alerts.topic.topic_arn,
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
