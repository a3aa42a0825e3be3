"""Compose the ports a process needs from its settings.

This is the composition root of processes that are configured by their environment (a Lambda at
cold start, a Batch job at start): `infra/` sets `DRESSVISION_BACKEND=aws` and the resource
names, `local/` sets `local` and `DRESSVISION_HOME`. Nothing else in the code asks which backend
it runs on. Adapters are imported lazily so a Lambda never loads what it does not use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shared.env import Settings
from shared.ports import JobRunner, LabelStore, ObjectStore, PredictionStore
from shared.taxonomy import Taxonomy, load_taxonomy

# Local state layout under DRESSVISION_HOME.
LOCAL_DB = "state.db"
LOCAL_OBJECTS = "objects"
LOCAL_JOB_LOGS = "jobs"

JobEventSink = Callable[[dict], None]


@dataclass
class Ports:
    settings: Settings
    taxonomy: Taxonomy
    labels: LabelStore
    predictions: PredictionStore
    catalog: ObjectStore
    artifacts: ObjectStore
    jobs: JobRunner


def build_ports(settings: Settings, *, on_job_event: JobEventSink | None = None) -> Ports:
    """The adapters for `settings.backend`. `on_job_event` receives local job state changes
    (on AWS, EventBridge delivers them instead)."""
    taxonomy = load_taxonomy()
    if settings.backend == "aws":
        from shared.jobs.batch import BatchJobRunner
        from shared.objects.s3 import S3ObjectStore
        from shared.stores.dynamodb import DynamoDBLabelStore, DynamoDBPredictionStore

        return Ports(
            settings=settings,
            taxonomy=taxonomy,
            labels=DynamoDBLabelStore(settings.labels_table),
            predictions=DynamoDBPredictionStore(settings.predictions_table),
            catalog=S3ObjectStore(settings.catalog_bucket),
            artifacts=S3ObjectStore(settings.artifacts_bucket),
            jobs=BatchJobRunner(settings.job_queue, settings.job_definitions),
        )

    from shared.jobs.local import LocalJobRunner
    from shared.objects.local import LocalObjectStore
    from shared.stores.sqlite import SqliteLabelStore, SqlitePredictionStore

    home = Path(settings.home)
    home.mkdir(parents=True, exist_ok=True)
    db = home / LOCAL_DB
    objects = home / LOCAL_OBJECTS
    return Ports(
        settings=settings,
        taxonomy=taxonomy,
        labels=SqliteLabelStore(db),
        predictions=SqlitePredictionStore(db),
        catalog=LocalObjectStore(objects / settings.catalog_bucket, name=settings.catalog_bucket),
        artifacts=LocalObjectStore(
            objects / settings.artifacts_bucket, name=settings.artifacts_bucket
        ),
        jobs=LocalJobRunner(settings, log_dir=home / LOCAL_JOB_LOGS, on_event=on_job_event),
    )
