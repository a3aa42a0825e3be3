"""CDK's grants to one role, each with the cdk-nag acknowledgements its wildcards need.

CDK's bucket and table grants name action families (`s3:GetObject*`, `s3:List*`) and key
prefixes (`<bucket>/models/*`); AwsSolutions-IAM5 flags each of them. They are the intended
scope here, so they are acknowledged finding by finding, next to the grant that causes them,
and only for the roles that have them.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3

from infra.nag import acknowledge

_ACTION_REASONS = {
    "s3:GetObject*": "CDK grant_read: GetObject and its version/ACL/tagging reads, limited to "
    "the key prefix in this statement's resources.",
    "s3:GetBucket*": "CDK grant_read: bucket metadata reads (location, versioning) of this "
    "one bucket, which the S3 client needs.",
    "s3:List*": "CDK grant_read: listing this one bucket; without it a missing key reads as "
    "AccessDenied instead of NoSuchKey.",
    "s3:Abort*": "CDK grant_put: aborting this role's own multipart uploads under its prefix.",
    "s3:DeleteObject*": "CDK grant_read_write: the training job deletes its checkpoint once a "
    "model is saved; limited to its own prefixes.",
}
_READ = ("s3:GetObject*", "s3:GetBucket*", "s3:List*")
_PUT = ("s3:Abort*",)
_DELETE = ("s3:DeleteObject*",)


class RoleGrants:
    """Grants to `role`; every call names exactly the bucket prefix or table it opens."""

    def __init__(self, role: iam.Role) -> None:
        self.role = role
        self._acknowledged: set[str] = set()

    def objects(
        self, bucket: s3.Bucket, prefix: str, *, read: bool = False, write: bool = False
    ) -> None:
        """Read and/or write (put; with read also delete) the objects under `prefix`."""
        if not (read or write):
            raise ValueError("grant read, write or both")
        pattern = f"{prefix}*"
        if read and write:
            bucket.grant_read_write(self.role, pattern)
            actions = (*_READ, *_PUT, *_DELETE)
        elif read:
            bucket.grant_read(self.role, pattern)
            actions = _READ
        else:
            bucket.grant_put(self.role, pattern)
            actions = _PUT
        for action in actions:
            self._acknowledge(f"Action::{action}", _ACTION_REASONS[action])
        self._acknowledge(
            f"Resource::<{_logical_id(bucket)}.Arn>/{pattern}",
            f"Objects under {prefix} only: the key layout of shared/keys.py gives each kind "
            "of object its own prefix.",
        )

    def table(self, table: ddb.Table, *, write: bool = False) -> None:
        """Read (or read and write) the items of `table` and query its indexes."""
        if write:
            table.grant_read_write_data(self.role)
        else:
            table.grant_read_data(self.role)
        indexes = Stack.of(table).resolve(table.node.default_child.global_secondary_indexes)
        if indexes:
            self._acknowledge(
                f"Resource::<{_logical_id(table)}.Arn>/index/*",
                "The indexes of this one table (e.g. by_model on Predictions), for Query.",
            )

    def _acknowledge(self, finding: str, reason: str) -> None:
        if finding not in self._acknowledged:
            self._acknowledged.add(finding)
            acknowledge(self.role, f"AwsSolutions-IAM5[{finding}]", reason)


def _logical_id(construct: s3.Bucket | ddb.Table) -> str:
    return Stack.of(construct).get_logical_id(construct.node.default_child)
