"""Trainings a deployment submits by itself train what `dressvision train` trains: the retrain
`collect` submits and a fresh deployment's first training, on the embedded backends (jobs run as
local processes) and on AWS (moto: S3, DynamoDB, Batch)."""

from __future__ import annotations

import io
import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import boto3
import pytest
from moto import mock_aws

from lambdas import ingest
from local.cli import build_parser
from local.commands.train import training_args
from local.runtime import s3_notification
from shared.aws.dynamodb import create_tables
from shared.aws.tasks_dynamodb import create_tasks_table
from shared.backends import build_ports
from shared.catalog import CatalogEntry
from shared.embedded.jobs import LocalJobRunner
from shared.env import Settings
from shared.inference import flush_pending
from shared.keys import FIRST_TRAINING_KEY, TRAIN_REQUEST_KEY, current_model_key
from shared.ports import Ports
from shared.recipe import trains_locator
from shared.records import LabelRecord, LabelSource
from shared.registry import ModelKind, ModelRegistry
from shared.relabel import SuspiciousLabel, answer_as_staff, collect, publish_tasks
from shared.training import maybe_first_training
from shared.workforce.internal import InternalWorkforce

# Not the recipe's defaults, so a job that ignored the settings would show.
SIZES = dict(image_size=96, train_batch_size=16)
REGION = "us-east-1"


def job_namespace(argv: list[str], settings: Settings):
    """What `python -m batch_jobs.train ARGV` runs with, on a machine with `settings`."""
    from batch_jobs.train import get_args_parser, job_args

    return job_args(get_args_parser().parse_args(argv), settings)


def cli_namespace(settings: Settings):
    """What `dressvision train` with no option runs with, on a machine with `settings`."""
    return training_args(build_parser().parse_args(["train"]), settings)


def assert_trains_like_the_cli(argv: list[str], ports: Ports) -> None:
    """The job's arguments alone carry the recipe: parsed on a machine without the
    deployment's settings (the job's own defaults), they still give what `dressvision train`
    gives with the deployment's settings."""
    job = vars(job_namespace(argv, Settings()))
    cli = vars(cli_namespace(ports.settings))
    assert job.pop("progress") is None and cli.pop("progress") is False  # a run option: bars
    assert job == cli
    assert job["dynamics"] and job["oof_folds"] == 0  # what review judges the train split with
    assert (job["image_size"], job["batch_size"]) == (96, 16)
    no_locator = ModelRegistry(ports.artifacts).current(ModelKind.LOCATOR)
    assert no_locator is None and trains_locator(job["locator"], no_locator)
    assert not trains_locator(job["locator"], "20261128T000000Z")  # later: the current one


def register(ports: Ports, n: int, *, start: int = 0) -> None:
    for i in range(start, start + n):
        ports.labels.register(
            LabelRecord(
                image_id=f"p{i}/0",
                product_id=f"p{i}",
                object_key=f"catalog/p{i}/0.jpg",
                split="train",
                facets={"neckline": "crew"},
                sources={"neckline": LabelSource.CATALOG},
            )
        )


def change_a_label(ports: Ports) -> InternalWorkforce:
    """One label changed by staff through a relabel task (what collect counts)."""
    register(ports, 1)
    staff = InternalWorkforce(ports.tasks)
    suspect = SuspiciousLabel("p0/0", "neckline", "crew", "v-neck", 0.9, 0.8)
    (task_id,) = publish_tasks(ports, staff, [suspect], max_assignments=1).task_ids
    assert answer_as_staff(ports, task_id, "v-neck") == "changed"
    return staff


# -- the embedded backends ------------------------------------------------------------------

RECORDER = """\
import json, os, sys
with open(os.environ["RECORD_ARGS_TO"], "w") as f:
    json.dump(sys.argv[1:], f)
"""


@pytest.fixture
def embedded(tmp_path, monkeypatch):
    """Embedded ports whose jobs run as local processes: a stand-in for `batch_jobs.train`
    records the arguments it was started with."""
    package = tmp_path / "recorded_jobs"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "train.py").write_text(RECORDER)
    monkeypatch.setenv("RECORD_ARGS_TO", str(tmp_path / "args.json"))
    settings = Settings(home=tmp_path / "home", retrain_threshold=1, **SIZES)
    runner = LocalJobRunner(
        settings,
        log_dir=tmp_path / "logs",
        python=sys.executable,
        cwd=tmp_path,
        module_prefix="recorded_jobs",
    )
    return replace(build_ports(settings), jobs=runner)


def test_a_retrain_from_collect_on_the_embedded_backends_trains_like_the_cli(embedded, tmp_path):
    staff = change_a_label(embedded)
    summary = collect(embedded, staff)
    assert summary.train_job is not None
    assert embedded.jobs.wait(summary.train_job, timeout=60) == {summary.train_job: "SUCCEEDED"}
    argv = json.loads((tmp_path / "args.json").read_text())
    assert_trains_like_the_cli(argv, embedded)
    assert embedded.artifacts.exists(TRAIN_REQUEST_KEY)


@pytest.fixture
def recorded(tmp_path, recording_jobs):
    settings = Settings(home=tmp_path, first_train_min_images=3, **SIZES)
    return replace(build_ports(settings), jobs=recording_jobs)


def ingest_batch(ports: Ports, first: int, n: int) -> dict:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (48, 64), (200, 30, 60)).save(buffer, "JPEG", quality=90)
    jpeg = buffer.getvalue()
    """Upload n labeled photos and run the ingest handler on their notifications."""
    records = []
    for i in range(first, first + n):
        entry = CatalogEntry(image_id=f"p{i}/0", product_id=f"p{i}", facets={"sleeve": "long"})
        info = ports.catalog.put(f"catalog/p{i}/0.jpg", jpeg, metadata=entry.to_metadata())
        body = json.dumps(s3_notification(ports.catalog.name, info))
        records.append({"messageId": f"m{i}", "body": body, "attributes": {}})
    return ingest.handle_sqs_batch({"Records": records}, ports)


def test_ingest_submits_the_first_training_once_when_enough_labeled_images_arrived(recorded):
    assert ingest_batch(recorded, 0, 2) == {"batchItemFailures": []}
    assert recorded.jobs.requests == []  # 2 labeled images of the 3 it waits for
    ingest_batch(recorded, 2, 2)
    (request,) = recorded.jobs.requests
    assert request.name == "train"
    assert_trains_like_the_cli(request.args, recorded)  # the locator included
    ingest_batch(recorded, 4, 2)
    assert len(recorded.jobs.requests) == 1  # one job, not one per batch
    claim = json.loads(recorded.artifacts.get(FIRST_TRAINING_KEY).body)
    assert claim["job_id"] == "job-1"


def test_no_first_training_when_a_model_is_current_or_the_setting_is_off(recorded):
    off = replace(recorded, settings=replace(recorded.settings, first_train_min_images=0))
    ingest_batch(off, 0, 4)
    assert recorded.jobs.requests == []
    recorded.artifacts.put(current_model_key("facets"), json.dumps({"version": "v1"}).encode())
    ingest_batch(recorded, 4, 4)
    assert recorded.jobs.requests == []  # not trained: queued for the inference window
    flush_pending(recorded)
    assert [r.name for r in recorded.jobs.requests] == ["infer"]


def test_a_failed_first_submission_is_retried_by_the_redelivered_batch(recorded):
    recorded.jobs.fail = True
    failed = ingest_batch(recorded, 0, 3)
    assert {f["itemIdentifier"] for f in failed["batchItemFailures"]} == {"m0", "m1", "m2"}
    assert not recorded.artifacts.exists(FIRST_TRAINING_KEY)  # the claim was released
    recorded.jobs.fail = False
    assert ingest_batch(recorded, 0, 3) == {"batchItemFailures": []}  # the redelivery
    assert [r.name for r in recorded.jobs.requests] == ["train"]


def test_concurrent_batches_submit_one_first_training(recorded):
    register(recorded, 3)
    barrier = threading.Barrier(4)

    def one_batch(_: int) -> str | None:
        barrier.wait(timeout=10)
        return maybe_first_training(recorded)

    with ThreadPoolExecutor(4) as pool:
        submitted = [job for job in pool.map(one_batch, range(4)) if job]
    assert len(submitted) == 1 and len(recorded.jobs.requests) == 1


# -- AWS (moto) -----------------------------------------------------------------------------


@pytest.fixture
def aws(aws_env, moto_batch_queue):
    """Ports on S3, DynamoDB and AWS Batch (moto, no containers run)."""
    with mock_aws(config={"batch": {"use_docker": False}}):
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in ("dv-catalog", "dv-artifacts"):
            s3.create_bucket(Bucket=bucket)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_tables(dynamodb, "Labels", "Predictions")
        create_tasks_table(dynamodb, "Tasks")
        queue, definition = moto_batch_queue("train", REGION)
        settings = Settings(
            backend="aws",
            catalog_bucket="dv-catalog",
            artifacts_bucket="dv-artifacts",
            labels_table="Labels",
            predictions_table="Predictions",
            tasks_table="Tasks",
            job_queue=queue,
            job_definitions={"train": definition},
            retrain_threshold=1,
            first_train_min_images=3,
            **SIZES,
        )
        yield build_ports(settings)


def submitted_args(job_id: str) -> list[str]:
    """The arguments of a Batch job's command after `python -m batch_jobs.train`."""
    (job,) = boto3.client("batch", region_name=REGION).describe_jobs(jobs=[job_id])["jobs"]
    command = job["container"]["command"]
    assert command[:3] == ["python", "-m", "batch_jobs.train"]
    return command[3:]


def test_a_retrain_from_collect_on_aws_batch_trains_like_the_cli(aws):
    summary = collect(aws, change_a_label(aws))
    assert summary.train_job is not None
    assert_trains_like_the_cli(submitted_args(summary.train_job), aws)


def test_ingest_submits_the_first_training_once_on_aws(aws):
    register(aws, 2)
    assert maybe_first_training(aws) is None
    register(aws, 1, start=2)
    job_id = maybe_first_training(aws)
    assert job_id is not None
    assert_trains_like_the_cli(submitted_args(job_id), aws)
    assert maybe_first_training(aws) is None
    jobs = boto3.client("batch", region_name=REGION).list_jobs(jobQueue=aws.settings.job_queue)
    assert [j["jobId"] for j in jobs["jobSummaryList"]] == [job_id]


def test_the_first_training_claim_is_conditional_on_s3(aws):
    assert aws.artifacts.put_if_absent(FIRST_TRAINING_KEY, b"{}")  # another batch's claim
    register(aws, 3)
    assert maybe_first_training(aws) is None


def test_inference_is_submitted_with_the_configured_batch_size(recorded):
    from batch_jobs.infer import get_args_parser
    from shared.inference import submit_inference
    from shared.messages import ManifestEntry

    sized = replace(recorded, settings=replace(recorded.settings, infer_batch_size=48))
    submit_inference(
        sized, [ManifestEntry(image_id="p/0", bucket="catalog", key="catalog/p/0.jpg")]
    )
    (request,) = recorded.jobs.requests
    assert get_args_parser().parse_args(request.args).batch_size == 48
