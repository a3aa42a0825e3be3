"""End to end on moto: an upload to the catalog bucket reaches the ingest handler through the
bucket notification and SQS, lands in DynamoDB, and submits the inference job on AWS Batch."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from lambdas import ingest, wiring
from shared.aws.dynamodb import create_tables
from shared.catalog import CatalogEntry
from shared.keys import current_model_key

REGION = "us-east-1"
CATALOG, ARTIFACTS = "dv-catalog", "dv-artifacts"


def _batch_queue_and_definition() -> tuple[str, str]:
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(
        RoleName="batch-service",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    batch = boto3.client("batch", region_name=REGION)
    env = batch.create_compute_environment(
        computeEnvironmentName="gpu", type="UNMANAGED", state="ENABLED", serviceRole=role
    )
    queue = batch.create_job_queue(
        jobQueueName="dv-gpu",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}],
    )
    definition = batch.register_job_definition(
        jobDefinitionName="dv-infer",
        type="container",
        containerProperties={
            "image": "dressvision:latest",
            "vcpus": 1,
            "memory": 512,
            "command": ["python", "-m", "batch_jobs.infer"],
        },
    )
    return queue["jobQueueArn"], definition["jobDefinitionArn"]


@pytest.fixture
def aws(aws_env, monkeypatch):
    with mock_aws(config={"batch": {"use_docker": False}}):
        s3 = boto3.client("s3", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        for bucket in (CATALOG, ARTIFACTS):
            s3.create_bucket(Bucket=bucket)
        queue_url = sqs.create_queue(QueueName="dv-ingest")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        s3.put_bucket_notification_configuration(
            Bucket=CATALOG,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": queue_arn,
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {
                            "Key": {"FilterRules": [{"Name": "prefix", "Value": "catalog/"}]}
                        },
                    }
                ]
            },
        )
        create_tables(boto3.client("dynamodb", region_name=REGION), "Labels", "Predictions")
        job_queue, infer_definition = _batch_queue_and_definition()
        for name, value in {
            "DRESSVISION_BACKEND": "aws",
            "DRESSVISION_CATALOG_BUCKET": CATALOG,
            "DRESSVISION_ARTIFACTS_BUCKET": ARTIFACTS,
            "DRESSVISION_LABELS_TABLE": "Labels",
            "DRESSVISION_PREDICTIONS_TABLE": "Predictions",
            "DRESSVISION_JOB_QUEUE": job_queue,
            "DRESSVISION_JOB_DEFINITION_INFER": infer_definition,
        }.items():
            monkeypatch.setenv(name, value)
        wiring.reset()  # a fresh "container" per test
        yield {"s3": s3, "sqs": sqs, "queue_url": queue_url, "job_queue": job_queue}


def _receive_all(aws) -> dict:
    """What the Lambda event source mapping would hand the function."""
    messages = []
    while (
        batch := aws["sqs"]
        .receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10, WaitTimeSeconds=0)
        .get("Messages")
    ):
        messages += batch
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {},
                "eventSource": "aws:sqs",
            }
            for m in messages
        ]
    }


def test_an_upload_is_registered_in_dynamodb_and_submits_inference(aws, make_jpeg, lambda_context):
    aws["s3"].put_object(
        Bucket=ARTIFACTS,
        Key=current_model_key("facets"),
        Body=json.dumps({"version": "20261128T000000Z"}),
    )
    entry = CatalogEntry(
        image_id="p-1/front", product_id="p-1", facets={"silhouette": "sheath"}, bbox=(1, 2, 40, 60)
    )
    aws["s3"].put_object(
        Bucket=CATALOG,
        Key="catalog/p-1/front.jpg",
        Body=make_jpeg((48, 64)),
        Metadata=entry.to_metadata(),
        ContentType="image/jpeg",
    )
    aws["s3"].put_object(Bucket=CATALOG, Key="catalog/p-2/broken photo.jpg", Body=b"GIF89a?")

    event = _receive_all(aws)
    bodies = [json.loads(r["body"]) for r in event["Records"]]
    # S3 sends a test event when the notification is configured; then one per upload.
    assert [b.get("Event") for b in bodies].count("s3:TestEvent") == 1
    assert len(bodies) == 3
    assert ingest.handler(event, lambda_context) == {"batchItemFailures": []}

    table = boto3.resource("dynamodb", region_name=REGION).Table("Labels")
    good = json.loads(table.get_item(Key={"image_id": "p-1/front", "sk": "LABEL"})["Item"]["body"])
    assert good["status"] == "ok" and good["facets"]["silhouette"] == "sheath"
    bad = json.loads(
        table.get_item(Key={"image_id": "p-2/broken-photo", "sk": "LABEL"})["Item"]["body"]
    )
    assert bad["status"] == "invalid" and bad["reason"]

    batch = boto3.client("batch", region_name=REGION)
    jobs = batch.list_jobs(
        jobQueue=aws["job_queue"], filters=[{"name": "JOB_NAME", "values": ["infer-*"]}]
    )
    (summary,) = jobs["jobSummaryList"]
    (job,) = batch.describe_jobs(jobs=[summary["jobId"]])["jobs"]
    command = job["container"]["command"]
    assert command[:3] == ["python", "-m", "batch_jobs.infer"]
    manifest = aws["s3"].get_object(Bucket=ARTIFACTS, Key=command[command.index("--manifest") + 1])
    assert [json.loads(line)["image_id"] for line in manifest["Body"].read().splitlines()] == [
        "p-1/front"
    ]


def test_redelivered_messages_change_nothing(aws, make_jpeg, lambda_context):
    aws["s3"].put_object(Bucket=CATALOG, Key="catalog/p-3/a.jpg", Body=make_jpeg())
    event = _receive_all(aws)
    ingest.handler(event, lambda_context)
    ingest.handler(event, lambda_context)
    table = boto3.resource("dynamodb", region_name=REGION).Table("Labels")
    items = table.scan()["Items"]
    labels = [i for i in items if i["sk"] == "LABEL"]
    assert len(labels) == 1 and int(labels[0]["version"]) == 1
