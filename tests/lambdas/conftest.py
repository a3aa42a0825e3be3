"""What the Lambda runtime passes to a handler, for tests that call `handler` itself."""

from __future__ import annotations

from dataclasses import dataclass

import boto3
import pytest
from moto import mock_aws

from lambdas import wiring
from shared.aws.dynamodb import create_tables


@dataclass(frozen=True)
class LambdaContext:
    """The attributes of the runtime's context object that powertools reads."""

    function_name: str = "dressvision-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:dressvision-test"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    log_group_name: str = "/aws/lambda/dressvision-test"
    log_stream_name: str = "2026/05/01/[$LATEST]abc"


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


# -- an AWS account on moto: catalog bucket -> SQS ingest queue, tables, a Batch queue --------
REGION = "us-east-1"
CATALOG, ARTIFACTS = "dv-catalog", "dv-artifacts"


@pytest.fixture
def aws(aws_env, monkeypatch, moto_batch_queue):
    """S3 buckets with the catalog notification to SQS, the tables and a Batch queue on moto,
    and the environment the ingest Lambda reads; `aws["receive_all"]()` is the SQS event."""
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
        job_queue, infer_definition = moto_batch_queue("infer", REGION)
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
        resources = {
            "s3": s3,
            "sqs": sqs,
            "queue_url": queue_url,
            "job_queue": job_queue,
            "catalog": CATALOG,
            "artifacts": ARTIFACTS,
        }
        resources["receive_all"] = lambda: _receive_all(resources)
        yield resources


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
