"""The catalog bucket (uploaded photos), the artifacts bucket (manifests, models, snapshots,
embeddings) and the bucket that receives their access logs."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.nag import acknowledge
from shared.keys import CATALOG_PREFIX, MANIFEST_PREFIX

ABORT_UPLOADS_AFTER = Duration.days(7)
LOG_RETENTION = Duration.days(365)
NONCURRENT_RETENTION = Duration.days(90)  # old model versions stay restorable this long
# A photo overwritten by a bad re-upload is restored by ingest within seconds; replaced photos
# stay restorable by hand this long.
CATALOG_NONCURRENT_RETENTION = Duration.days(30)
MANIFEST_RETENTION = Duration.days(30)  # a manifest is read by its job within hours


class DataBuckets(Construct):
    """Private, encrypted, SSL-only buckets. Data is RETAINed when the stack is deleted."""

    def __init__(self, scope: Construct, construct_id: str, *, name_prefix: str) -> None:
        super().__init__(scope, construct_id)
        self.logs = s3.Bucket(
            self,
            "AccessLogs",
            **_private(),
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=LOG_RETENTION)],
        )
        acknowledge(
            self.logs,
            "AwsSolutions-S1",
            "This is the access-log bucket of the others; logging it into itself would log "
            "its own log deliveries forever.",
        )
        # Named so that the catalog queue's policy can name it without depending on the
        # bucket (the bucket in turn waits for that policy: S3 validates the destination).
        self.catalog_bucket_name = f"{name_prefix}-catalog-{Aws.ACCOUNT_ID}-{Aws.REGION}"
        self.catalog = s3.Bucket(
            self,
            "Catalog",
            **_private(),
            bucket_name=self.catalog_bucket_name,
            server_access_logs_bucket=self.logs,
            server_access_logs_prefix="catalog/",
            # Workers' browsers load photos through presigned URLs from another origin. CORS
            # grants no access by itself: every GET still needs a valid signature.
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.GET, s3.HttpMethods.HEAD],
                    allowed_origins=["*"],
                    allowed_headers=["*"],
                    max_age=3000,
                )
            ],
            # Versioned: a truncated or corrupt re-upload never destroys a good photo; ingest
            # makes the last good version current again (lambdas/ingest.py).
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    abort_incomplete_multipart_upload_after=ABORT_UPLOADS_AFTER,
                    noncurrent_version_expiration=CATALOG_NONCURRENT_RETENTION,
                )
            ],
        )
        self.artifacts = s3.Bucket(
            self,
            "Artifacts",
            **_private(),
            versioned=True,  # a bad promotion of models/<kind>/current.json can be undone
            server_access_logs_bucket=self.logs,
            server_access_logs_prefix="artifacts/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    abort_incomplete_multipart_upload_after=ABORT_UPLOADS_AFTER,
                    noncurrent_version_expiration=NONCURRENT_RETENTION,
                ),
                s3.LifecycleRule(prefix=MANIFEST_PREFIX, expiration=MANIFEST_RETENTION),
            ],
        )

    def notify_catalog_uploads(self, queue: sqs.IQueue) -> None:
        """Send `s3:ObjectCreated:*` under `catalog/` to `queue`.

        Written on the bucket itself rather than with `add_event_notification`, which would
        add CDK's notification custom resource (a Lambda allowed `s3:PutBucketNotification`
        on every bucket)."""
        bucket_arn = Stack.of(self).format_arn(
            service="s3", region="", account="", resource=self.catalog_bucket_name
        )
        queue.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CatalogUploadsFromS3",
                principals=[iam.ServicePrincipal("s3.amazonaws.com")],
                actions=["sqs:SendMessage"],
                resources=[queue.queue_arn],
                conditions={
                    "ArnEquals": {"aws:SourceArn": bucket_arn},
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                },
            )
        )
        cfn_bucket = self.catalog.node.default_child
        cfn_bucket.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            queue_configurations=[
                s3.CfnBucket.QueueConfigurationProperty(
                    event="s3:ObjectCreated:*",
                    queue=queue.queue_arn,
                    filter=s3.CfnBucket.NotificationFilterProperty(
                        s3_key=s3.CfnBucket.S3KeyFilterProperty(
                            rules=[
                                s3.CfnBucket.FilterRuleProperty(name="prefix", value=CATALOG_PREFIX)
                            ]
                        )
                    ),
                )
            ]
        )
        # S3 checks that it may send to the queue when the notification is set: the queue's
        # policy (created by add_to_resource_policy above) must exist first.
        policy = queue.node.try_find_child("Policy")
        if policy is None:
            raise ValueError(f"queue {queue.node.path} has no resource policy to wait for")
        cfn_bucket.node.add_dependency(policy)


def _private() -> dict:
    """What every bucket here shares."""
    return dict(
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        removal_policy=RemovalPolicy.RETAIN,
    )
