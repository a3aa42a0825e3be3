"""The relabel loop's rounds: collect -> retrain -> re-infer -> the next review on the new
model's out-of-sample predictions, skipping what people decided, until a round changes too
little; and the review after an upload's inference reads only what that job tagged."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from lambdas import batch_events
from lambdas import review as review_lambda
from shared.keys import current_model_key, manifest_key, review_thresholds_key
from shared.messages import BatchJobStateChange, ManifestEntry
from shared.records import FacetPrediction, LabelRecord, LabelSource, PredictionRecord
from shared.relabel import collect, oof_version


@pytest.fixture
def job_event(load_event):
    def make(command, job_id, *args):
        event = load_event("batch_job_state_change_succeeded.json")
        event["detail"]["container"]["command"] = ["python", "-m", command, *args]
        event["detail"]["jobId"] = job_id
        return BatchJobStateChange.model_validate(event)

    return make


def land_model(ports, old: str, new: str, *, doubt: str) -> None:
    """A retrained model `new` is promoted: its predictions are `old`'s, except that it now
    doubts the catalog label of image `doubt` (a mistake the first model missed)."""
    for version in (old, oof_version(old)):
        for p in list(ports.predictions.for_model(version)):
            if p.image_id == doubt:
                facet, prediction = next(iter(p.facets.items()))
                k = len(prediction.probs)  # sure of the next label
                probs = [
                    0.99
                    if j == (prediction.probs.index(max(prediction.probs)) + 1) % k
                    else 0.01 / (k - 1)
                    for j in range(k)
                ]
                p = p.model_copy(
                    update={"facets": {facet: prediction.model_copy(update={"probs": probs})}}
                )
            target = new if version == old else oof_version(new)
            ports.predictions.put(p.model_copy(update={"model_version": target}))
    ports.artifacts.put(current_model_key("facets"), json.dumps({"version": new}).encode())


def run_round(ports, crowd) -> None:
    summary = collect(ports, crowd)
    while summary.asked_more:
        summary = collect(ports, crowd)


def next_review(ports, job_event) -> dict:
    """train SUCCEEDED -> re-inference submitted -> infer SUCCEEDED -> the review message."""
    assert batch_events.on_job_state_change(ports, job_event("batch_jobs.train", "t-1")).startswith(
        batch_events.REINFER_SUBMITTED
    )
    reinfer_job = f"job-{len(ports.jobs.requests)}"  # RecordingJobRunner's id of the infer job
    result = batch_events.on_job_state_change(ports, job_event("batch_jobs.infer", reinfer_job))
    assert result == "review round queued"
    return json.loads(ports.review_queue.bodies[-1])


def test_rounds_run_on_the_new_model_and_skip_what_people_decided(
    relabel_ports, crowd, job_event, flipped_necklines
):
    ports = replace(relabel_ports, settings=replace(relabel_ports.settings, loop_min_changes=3))
    first = review_lambda.review(ports, crowd, review_lambda.ReviewRequest(round=True))
    assert first["published"] == 5 and first["without_predictions"] == 0
    run_round(ports, crowd)  # fixes the flips, then submits the retraining (threshold 3)
    assert [r.name for r in ports.jobs.requests] == ["train"]
    decided = {t.image_id for t in ports.tasks.list("decided")}
    assert decided and all(
        ports.labels.get(i).sources["neckline"] == LabelSource.CROWD for i in decided
    )
    land_model(ports, "v1", "v2", doubt="p5/0")
    message = next_review(ports, job_event)
    assert message["model_version"] == "v2" and message["round"] is True
    second = review_lambda.review(ports, crowd, review_lambda.ReviewRequest(**message))
    assert second["published"] == 1, (
        second
    )  # only the new doubt: decided labels are not asked again
    new_tasks = [t for t in ports.tasks.list("open")]
    assert [t.image_id for t in new_tasks] == ["p5/0"]


def test_the_loop_stops_when_a_round_changed_fewer_than_the_setting(
    relabel_ports, crowd, job_event
):
    ports = relabel_ports  # DRESSVISION_LOOP_MIN_CHANGES: 10 by default; 5 labels are wrong
    review_lambda.review(ports, crowd, review_lambda.ReviewRequest(round=True))
    run_round(ports, crowd)
    land_model(ports, "v1", "v2", doubt="p5/0")
    message = next_review(ports, job_event)
    stopped = review_lambda.review(ports, crowd, review_lambda.ReviewRequest(**message))
    assert stopped["published"] == 0 and stopped["reason"].startswith("converged")
    assert "DRESSVISION_LOOP_MIN_CHANGES" in stopped["reason"]
    assert not list(ports.tasks.list("open"))
    assert ports.artifacts.exists(review_thresholds_key("v2"))  # for the uploads' reviews


def test_an_uploads_review_ranks_only_the_images_its_job_tagged(
    relabel_ports, crowd, job_event, flipped_necklines
):
    ports = relabel_ports
    review_lambda.review(  # the round's review stores the model's thresholds; publishes none
        ports, crowd, review_lambda.ReviewRequest(round=True, limit=0)
    )
    tagged = ["p3/0", "p4/0"]  # p3 is flipped, p4 is right
    lines = "\n".join(
        ManifestEntry(image_id=i, bucket="c", key=f"catalog/{i}.jpg").model_dump_json()
        for i in tagged
    )
    ports.artifacts.put(manifest_key("m-1"), lines.encode())
    event = job_event("batch_jobs.infer", "j-7", "--manifest", manifest_key("m-1"))
    assert batch_events.on_job_state_change(ports, event) == "review queued"
    message = json.loads(ports.review_queue.bodies[-1])
    assert message["manifest"] == manifest_key("m-1") and "round" not in message
    scans = []
    labels = ports.labels

    class NoScan:
        def __getattr__(self, name):
            return getattr(labels, name)

        def scan(self, *args, **kwargs):
            scans.append(1)
            return labels.scan(*args, **kwargs)

    counted = replace(ports, labels=NoScan())
    summary = review_lambda.review(counted, crowd, review_lambda.ReviewRequest(**message))
    assert scans == [] and summary["labelled"] == 2
    assert summary["published"] == 1
    assert [t.image_id for t in ports.tasks.list("open")] == ["p3/0"]


def test_on_aws_a_retrains_reinference_queues_a_round_and_the_round_can_stop(
    aws, monkeypatch, load_event, lambda_context
):
    """moto: S3 artifacts, DynamoDB labels, Batch, and the SQS review queue."""
    import boto3

    from lambdas import wiring
    from shared.aws.tasks_dynamodb import create_tasks_table
    from shared.keys import TRAIN_REQUEST_KEY, reinfer_marker_key

    create_tasks_table(boto3.client("dynamodb", region_name="us-east-1"), "Tasks")
    monkeypatch.setenv("DRESSVISION_TASKS_TABLE", "Tasks")
    review_queue = aws["sqs"].create_queue(QueueName="dv-review")["QueueUrl"]
    monkeypatch.setenv("DRESSVISION_REVIEW_QUEUE_URL", review_queue)
    monkeypatch.setenv("DRESSVISION_LOOP_MIN_CHANGES", "5")
    wiring.reset()
    s3 = aws["s3"]
    s3.put_object(
        Bucket=aws["artifacts"], Key=current_model_key("facets"), Body=b'{"version": "v2"}'
    )
    wiring.ports().labels.register(
        LabelRecord(
            image_id="p1/front",
            product_id="p1",
            object_key="catalog/p1/front.jpg",
            split="train",
            facets={"neckline": "v-neck"},
        )
    )

    k = len(wiring.ports().taxonomy.labels("neckline"))
    probs = [0.9 if j == 0 else 0.1 / (k - 1) for j in range(k)]
    wiring.ports().predictions.put(  # the new model's out-of-fold prediction of that photo
        PredictionRecord(
            image_id="p1/front",
            model_version=oof_version("v2"),
            facets={"neckline": FacetPrediction(label="v-neck", prob=0.9, probs=probs)},
        )
    )

    def event(command, job_id, *args):
        body = load_event("batch_job_state_change_succeeded.json")
        body["detail"]["container"]["command"] = ["python", "-m", command, *args]
        body["detail"]["jobId"] = job_id
        return body

    result = batch_events.handler(event("batch_jobs.train", "t-1"), lambda_context)["result"]
    assert result.startswith(batch_events.REINFER_SUBMITTED)
    marker = s3.get_object(Bucket=aws["artifacts"], Key=reinfer_marker_key("facets", "v2"))
    reinfer_job = json.loads(marker["Body"].read())["job_id"]
    batch = boto3.client("batch", region_name="us-east-1")
    assert batch.describe_jobs(jobs=[reinfer_job])["jobs"][0]["jobName"].startswith("infer")
    batch_events.handler(event("batch_jobs.infer", reinfer_job), lambda_context)
    batch_events.handler(
        event("batch_jobs.infer", "other", "--manifest", "manifests/infer/m-1.jsonl"),
        lambda_context,
    )
    sqs = aws["sqs"]
    messages = sqs.receive_message(QueueUrl=review_queue, MaxNumberOfMessages=10)["Messages"]
    bodies = [json.loads(m["Body"]) for m in messages]
    assert [(b.get("round"), b.get("manifest")) for b in bodies] == [
        (True, None),
        (None, "manifests/infer/m-1.jsonl"),
    ]
    # The round that led to v2 changed 2 labels (< 5): the loop stops, nothing is published.
    s3.put_object(Bucket=aws["artifacts"], Key=TRAIN_REQUEST_KEY, Body=b'{"changed": 2}')
    stopped = review_lambda.review(wiring.ports(), None, review_lambda.ReviewRequest(**bodies[0]))
    assert stopped["published"] == 0 and "converged" in stopped["reason"]
    thresholds = s3.list_objects_v2(Bucket=aws["artifacts"], Prefix="models/facets/v2/")
    assert review_thresholds_key("v2") in [o["Key"] for o in thresholds.get("Contents", [])]
