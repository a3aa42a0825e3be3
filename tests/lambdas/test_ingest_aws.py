"""End to end on moto: an upload to the catalog bucket reaches the ingest handler through the
bucket notification and SQS, lands in DynamoDB, and submits the inference job on AWS Batch."""

from __future__ import annotations

import json

import boto3
import pytest

from lambdas import flush, ingest
from shared.catalog import CatalogEntry
from shared.keys import current_model_key
from shared.ports import RegisterOutcome
from shared.records import ImageStatus


def test_an_upload_is_registered_in_dynamodb_and_submits_inference(aws, make_jpeg, lambda_context):
    aws["s3"].put_object(
        Bucket=aws["artifacts"],
        Key=current_model_key("facets"),
        Body=json.dumps({"version": "20261128T000000Z"}),
    )
    entry = CatalogEntry(
        image_id="p-1/front", product_id="p-1", facets={"silhouette": "sheath"}, bbox=(1, 2, 40, 60)
    )
    aws["s3"].put_object(
        Bucket=aws["catalog"],
        Key="catalog/p-1/front.jpg",
        Body=make_jpeg((48, 64)),
        Metadata=entry.to_metadata(),
        ContentType="image/jpeg",
    )
    aws["s3"].put_object(Bucket=aws["catalog"], Key="catalog/p-2/broken photo.jpg", Body=b"GIF89a?")

    event = aws["receive_all"]()
    bodies = [json.loads(r["body"]) for r in event["Records"]]
    # S3 sends a test event when the notification is configured; then one per upload.
    assert [b.get("Event") for b in bodies].count("s3:TestEvent") == 1
    assert len(bodies) == 3
    assert ingest.handler(event, lambda_context) == {"batchItemFailures": []}
    assert flush.handler({}, lambda_context)["jobs"]  # the inference window's flush

    table = boto3.resource("dynamodb", region_name="us-east-1").Table("Labels")
    good = json.loads(table.get_item(Key={"image_id": "p-1/front", "sk": "LABEL"})["Item"]["body"])
    assert good["status"] == "ok" and good["facets"]["silhouette"] == "sheath"
    bad = json.loads(
        table.get_item(Key={"image_id": "p-2/broken-photo", "sk": "LABEL"})["Item"]["body"]
    )
    assert bad["status"] == "invalid" and bad["reason"]

    batch = boto3.client("batch", region_name="us-east-1")
    jobs = batch.list_jobs(
        jobQueue=aws["job_queue"], filters=[{"name": "JOB_NAME", "values": ["infer-*"]}]
    )
    (summary,) = jobs["jobSummaryList"]
    (job,) = batch.describe_jobs(jobs=[summary["jobId"]])["jobs"]
    command = job["container"]["command"]
    assert command[:3] == ["python", "-m", "batch_jobs.infer"]
    manifest = aws["s3"].get_object(
        Bucket=aws["artifacts"], Key=command[command.index("--manifest") + 1]
    )
    assert [json.loads(line)["image_id"] for line in manifest["Body"].read().splitlines()] == [
        "p-1/front"
    ]


def test_redelivered_messages_change_nothing(aws, make_jpeg, lambda_context):
    aws["s3"].put_object(Bucket=aws["catalog"], Key="catalog/p-3/a.jpg", Body=make_jpeg())
    event = aws["receive_all"]()
    ingest.handler(event, lambda_context)
    ingest.handler(event, lambda_context)
    table = boto3.resource("dynamodb", region_name="us-east-1").Table("Labels")
    items = table.scan()["Items"]
    labels = [i for i in items if i["sk"] == "LABEL"]
    assert len(labels) == 1 and int(labels[0]["version"]) == 1


def _notifications(keys: list[str], bucket: str) -> dict:
    """The SQS event of S3 ObjectCreated notifications for `keys` (one message each)."""
    return {
        "Records": [
            {
                "messageId": f"m-{key}",
                "body": json.dumps(
                    {
                        "Records": [
                            {
                                "eventName": "ObjectCreated:Put",
                                "s3": {"bucket": {"name": bucket}, "object": {"key": key}},
                            }
                        ]
                    }
                ),
                "attributes": {},
                "eventSource": "aws:sqs",
            }
            for key in keys
        ]
    }


@pytest.mark.slow
def test_ten_thousand_uploads_make_one_array_job_per_window(aws, lambda_context, monkeypatch):
    """10,000 upload notifications in SQS batches of 10 (1,000 ingest invocations, which
    submitted 1,000 jobs before the windows) -> one window -> one array job of 2 children.
    Registration is stubbed (tested above): this counts what is queued and submitted."""
    aws["s3"].put_object(
        Bucket=aws["artifacts"], Key=current_model_key("facets"), Body=json.dumps({"version": "v1"})
    )

    def registered(ports, key):
        image_id = key.removeprefix("catalog/").removesuffix(".jpg")
        return ingest.IngestResult(image_id, key, RegisterOutcome.CREATED, ImageStatus.OK)

    monkeypatch.setattr(ingest, "ingest_object", registered)
    keys = [f"catalog/p{i:05d}/front.jpg" for i in range(10_000)]
    for start in range(0, len(keys), 10):
        event = _notifications(keys[start : start + 10], aws["catalog"])
        assert ingest.handler(event, lambda_context) == {"batchItemFailures": []}

    batch = boto3.client("batch", region_name="us-east-1")
    assert batch.list_jobs(jobQueue=aws["job_queue"])["jobSummaryList"] == []  # none yet
    (job_id,) = flush.handler({}, lambda_context)["jobs"]
    (job,) = batch.describe_jobs(jobs=[job_id])["jobs"]
    assert job["arrayProperties"]["size"] == 2  # 10,000 images / 5,000 per child
    command = job["container"]["command"]
    manifest = aws["s3"].get_object(
        Bucket=aws["artifacts"], Key=command[command.index("--manifest") + 1]
    )
    assert len(manifest["Body"].read().splitlines()) == 10_000
    assert flush.handler({}, lambda_context)["jobs"] == []  # nothing left pending
