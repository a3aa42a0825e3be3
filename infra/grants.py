"""CDK's grants to one role, each with the cdk-nag acknowledgements its wildcards need.

CDK's bucket and table grants name action families (`s3:GetObject*`, `s3:List*`) and key
prefixes (`<bucket>/models/*`); AwsSolutions-IAM5 flags each of them. They are the intended
scope here, so they are acknowledged finding by finding, next to the grant that causes them,
and only for the roles that have them. The workforce APIs follow: Mechanical Turk actions (no
resource-level permissions at all) and A2I human loops (one flow definition).
"""

from __future__ import annotations

from collections.abc import Mapping

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
# IAM's service prefix of Mechanical Turk is `mechanicalturk` (not the endpoint's
# `mturk-requester`), and none of its actions has a resource type: they need Resource "*".
MTURK_ACTIONS = frozenset(
    {
        "CreateHITType",
        "CreateHITWithHITType",
        "GetAccountBalance",
        "UpdateNotificationSettings",
        "ListHITs",
        "ListAssignmentsForHIT",
        "ApproveAssignment",
        "CreateAdditionalAssignmentsForHIT",
        "UpdateExpirationForHIT",
    }
)
# Keeping low-accuracy workers out, granted only when minWorkerAccuracy > 0.
MTURK_KEEP_OUT_ACTIONS = frozenset(
    {"ListQualificationTypes", "CreateQualificationType", "AssociateQualificationWithWorker"}
)
MTURK_ACTIONS = MTURK_ACTIONS | MTURK_KEEP_OUT_ACTIONS
MTURK_REASON = (
    "Amazon Mechanical Turk actions have no resource-level permissions (the Service "
    "Authorization Reference lists no resource type for them): Resource '*' is the only "
    "possible scope. The statement names each action the workforce adapter calls, no wildcard."
)


class RoleGrants:
    """Grants to `role`; every call names exactly the bucket prefix or table it opens."""

    def __init__(self, role: iam.Role) -> None:
        self.role = role
        self._acknowledged: set[str] = set()

    def objects(
        self, bucket: s3.Bucket, prefix: str, *, read: bool = False, write: bool = False
    ) -> None:
        """Read and/or write (put; with read also delete) the objects under `prefix`."""
        self.keys(bucket, f"{prefix}*", read=read, write=write)

    def keys(
        self, bucket: s3.Bucket, pattern: str, *, read: bool = False, write: bool = False
    ) -> None:
        """Like `objects`, for the keys matching `pattern`: one key (`loop/state.json`) or an
        IAM wildcard (`models/*/reinfer.json`; `*` also matches `/`)."""
        if not (read or write):
            raise ValueError("grant read, write or both")
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
        if "*" in pattern:
            self._acknowledge(
                f"Resource::<{_logical_id(bucket)}.Arn>/{pattern}",
                f"Objects matching {pattern} only: the key layout (shared/keys.py) gives each "
                "kind of object its own prefix or name.",
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

    def mturk(self, *actions: str) -> None:
        """Call these Mechanical Turk actions (e.g. `CreateHITWithHITType`): Resource "*",
        acknowledged, since MTurk has no resource-level permissions."""
        unknown = sorted(set(actions) - MTURK_ACTIONS)
        if unknown or not actions:
            raise ValueError(f"MTurk actions among {sorted(MTURK_ACTIONS)}, got {unknown}")
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="MechanicalTurk",
                actions=[f"mechanicalturk:{a}" for a in sorted(actions)],
                resources=["*"],
            )
        )
        self._acknowledge("Resource::*", MTURK_REASON)

    def human_loops(
        self, flow_definition: Mapping[str, str], *, start: bool = False, describe: bool = False
    ) -> None:
        """Start human loops of one A2I flow definition (`StartHumanLoop`'s resource is the
        flow definition) and/or describe human loops (`DescribeHumanLoop`'s resource is the
        loop, named per task at run time, so every loop of that account and region).
        `flow_definition`: `StageSettings.a2i_flow_definition`."""
        if not (start or describe):
            raise ValueError("grant start, describe or both")
        partition, region, account, name = (
            flow_definition[k] for k in ("partition", "region", "account", "name")
        )
        arn = f"arn:{partition}:sagemaker:{region}:{account}"
        if start:
            self.role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="StartHumanLoops",
                    actions=["sagemaker:StartHumanLoop"],
                    resources=[f"{arn}:flow-definition/{name}"],
                )
            )
        if describe:
            loops = f"{arn}:human-loop/*"
            self.role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="DescribeHumanLoops",
                    actions=["sagemaker:DescribeHumanLoop"],
                    resources=[loops],
                )
            )
            self._acknowledge(
                f"Resource::{loops}",
                "Human loop names derive from task ids at run time (shared/workforce/a2i.py); "
                "only DescribeHumanLoop, a read, of this account and region.",
            )

    def _acknowledge(self, finding: str, reason: str) -> None:
        if finding not in self._acknowledged:
            self._acknowledged.add(finding)
            acknowledge(self.role, f"AwsSolutions-IAM5[{finding}]", reason)


def _logical_id(construct: s3.Bucket | ddb.Table) -> str:
    return Stack.of(construct).get_logical_id(construct.node.default_child)
