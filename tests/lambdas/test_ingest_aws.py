"""End to end on moto: an upload to the catalog bucket reaches the ingest handler through the
bucket notification and SQS, lands in DynamoDB, and submits the inference job on AWS Batch."""

from __future__ import annotations

import json

import boto3

from lambdas import ingest
from shared.catalog import CatalogEntry
from shared.keys import current_model_key


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
