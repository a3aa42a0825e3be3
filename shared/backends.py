"""Compose the ports a process needs from its settings.

This is the composition root of processes that are configured by their environment (a Lambda at
cold start, a Batch job at start): `infra/` sets `DRESSVISION_BACKEND=aws` and the resource
names, `local/` sets `local` and `DRESSVISION_HOME`. Nothing else in the code asks which backend
it runs on. Adapters are imported lazily so a Lambda never loads what it does not use.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from shared.env import Settings
from shared.errors import ConfigurationError
from shared.keys import EMBEDDING_DIMENSIONS, vector_index_key, vector_index_name
from shared.ports import Ports, Workforce
from shared.taxonomy import load_taxonomy

# Local state layout under DRESSVISION_HOME.
LOCAL_DB = "state.db"
LOCAL_OBJECTS = "objects"
LOCAL_JOB_LOGS = "jobs"

JobEventSink = Callable[[dict], None]


def build_ports(settings: Settings, *, on_job_event: JobEventSink | None = None) -> Ports:
    """The adapters for `settings.backend`. `on_job_event` receives local job state changes
    (on AWS, EventBridge delivers them instead)."""
    taxonomy = load_taxonomy()
    if settings.backend == "aws":
        from shared.aws.batch import BatchJobRunner
        from shared.aws.dynamodb import DynamoDBLabelStore, DynamoDBPredictionStore
        from shared.aws.s3 import S3ObjectStore
        from shared.aws.sqs import SqsMessageQueue
        from shared.aws.tasks_dynamodb import DynamoDBTaskStore

        vectors = None
        if settings.vector_bucket:
            from shared.aws.s3vectors import S3VectorsIndex

            def vectors(kind: str) -> S3VectorsIndex:
                return S3VectorsIndex(
                    settings.vector_bucket,
                    vector_index_name(kind),
                    dimension=EMBEDDING_DIMENSIONS.get(kind),
                )

        return Ports(
            settings=settings,
            taxonomy=taxonomy,
            labels=DynamoDBLabelStore(settings.labels_table),
            predictions=DynamoDBPredictionStore(settings.predictions_table),
            catalog=S3ObjectStore(settings.catalog_bucket),
            artifacts=S3ObjectStore(settings.artifacts_bucket),
            jobs=BatchJobRunner(settings.job_queue, settings.job_definitions),
            tasks=DynamoDBTaskStore(settings.tasks_table),
            review_queue=(
                SqsMessageQueue(settings.review_queue_url) if settings.review_queue_url else None
            ),
            vectors=vectors,
        )

    from shared.embedded.files import LocalObjectStore
    from shared.embedded.jobs import LocalJobRunner
    from shared.embedded.sqlite import SqliteLabelStore, SqlitePredictionStore
    from shared.embedded.tasks_sqlite import SqliteTaskStore

    home = Path(settings.home)
    home.mkdir(parents=True, exist_ok=True)
    db = home / LOCAL_DB
    objects = home / LOCAL_OBJECTS
    bucket = settings.artifacts_bucket
    artifacts = LocalObjectStore(objects / bucket, name=bucket)

    def local_vectors(kind: str):
        from shared.embedded.faiss_index import FaissVectorIndex, FileLock

        return FaissVectorIndex(
            artifacts,
            vector_index_key(kind),
            hnsw_above=settings.vector_hnsw_above,
            lock=FileLock(home / f"vectors-{kind}.lock"),
        )

    return Ports(
        settings=settings,
        taxonomy=taxonomy,
        labels=SqliteLabelStore(db),
        predictions=SqlitePredictionStore(db),
        catalog=LocalObjectStore(
            objects / settings.catalog_bucket, name=settings.catalog_bucket, versioned=True
        ),
        artifacts=artifacts,
        jobs=LocalJobRunner(settings, log_dir=home / LOCAL_JOB_LOGS, on_event=on_job_event),
        tasks=SqliteTaskStore(db),
        vectors=local_vectors,
    )


def build_workforce(settings: Settings, ports: Ports) -> Workforce:
    """The workforce named by `settings.workforce` (DRESSVISION_WORKFORCE)."""
    name = settings.workforce
    if name == "internal":
        from shared.workforce.internal import InternalWorkforce

        return InternalWorkforce(ports.tasks)
    if name == "simulated":
        from shared.workforce.simulated import SimulatedWorkforce, truth_from_csv

        if not settings.simulated_truth:
            raise ConfigurationError(
                "the simulated workforce needs DRESSVISION_SIMULATED_TRUTH: the labels_true.csv "
                "of a synthetic catalog, whose labels the simulated workers see"
            )
        truth = truth_from_csv(settings.simulated_truth, ports.taxonomy.facet_names)
        return SimulatedWorkforce(truth, seed=settings.simulated_seed)
    if name == "mturk":
        from shared.workforce.mturk import HitTypeSettings, MTurkWorkforce, committed_spend

        return MTurkWorkforce(
            budget_usd=settings.mturk_budget_usd,
            spent_usd=lambda: committed_spend(ports.tasks.list(), settings.mturk_reward_usd),
            ledger=ports.tasks,  # shared by every process: the cap holds across Lambdas
            hit_type=HitTypeSettings(reward_usd=settings.mturk_reward_usd),
            production=settings.mturk_production,
            notification_queue_url=settings.mturk_notification_queue_url or None,
            keep_out_low_quality=settings.min_worker_accuracy > 0,
        )
    if name == "a2i":
        from shared.workforce.a2i import A2IWorkforce

        if not settings.a2i_flow_definition_arn:
            raise ConfigurationError("the a2i workforce needs DRESSVISION_A2I_FLOW_DEFINITION_ARN")
        return A2IWorkforce(settings.a2i_flow_definition_arn)
    raise ConfigurationError(f"unknown workforce {name!r}: use internal, simulated, mturk or a2i")
