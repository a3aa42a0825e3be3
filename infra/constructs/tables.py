"""The DynamoDB tables: Labels, Predictions (with the `by_model` index) and Tasks (with the
`by_status` and `by_external_id` indexes).

Key names come from `shared/keys.py`, the schema the DynamoDB adapters read and write, so the
table and the code cannot disagree.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as ddb
from constructs import Construct

from shared.keys import (
    LABELS_PARTITION_KEY,
    LABELS_SORT_KEY,
    PREDICTIONS_BY_MODEL_INDEX,
    PREDICTIONS_PARTITION_KEY,
    PREDICTIONS_SORT_KEY,
    TASKS_BY_EXTERNAL_ID_INDEX,
    TASKS_BY_STATUS_INDEX,
    TASKS_EXTERNAL_ID,
    TASKS_PARTITION_KEY,
    TASKS_STATUS,
)


class DataTables(Construct):
    """On-demand, point-in-time recovery, AWS-managed encryption, deletion protection, RETAIN:
    a `cdk destroy` never takes labels with it."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.labels = _table(self, "Labels", LABELS_PARTITION_KEY, LABELS_SORT_KEY)
        self.predictions = _table(
            self, "Predictions", PREDICTIONS_PARTITION_KEY, PREDICTIONS_SORT_KEY
        )
        # All predictions of one model version, e.g. to compare two versions or to re-rank.
        self.predictions.add_global_secondary_index(
            index_name=PREDICTIONS_BY_MODEL_INDEX,
            partition_key=_string(PREDICTIONS_SORT_KEY),
            sort_key=_string(PREDICTIONS_PARTITION_KEY),
            projection_type=ddb.ProjectionType.ALL,
        )
        self.tasks = _table(self, "Tasks", TASKS_PARTITION_KEY, None)
        # Open tasks without a scan (review and collect list them on every pass).
        self.tasks.add_global_secondary_index(
            index_name=TASKS_BY_STATUS_INDEX,
            partition_key=_string(TASKS_STATUS),
            projection_type=ddb.ProjectionType.ALL,
        )
        # The task of an MTurk HIT or A2I loop; keys only: the adapter re-reads the task itself.
        self.tasks.add_global_secondary_index(
            index_name=TASKS_BY_EXTERNAL_ID_INDEX,
            partition_key=_string(TASKS_EXTERNAL_ID),
            projection_type=ddb.ProjectionType.KEYS_ONLY,
        )


def _string(name: str) -> ddb.Attribute:
    return ddb.Attribute(name=name, type=ddb.AttributeType.STRING)


def _table(scope: Construct, construct_id: str, partition: str, sort: str | None) -> ddb.Table:
    return ddb.Table(
        scope,
        construct_id,
        partition_key=_string(partition),
        sort_key=_string(sort) if sort else None,
        billing_mode=ddb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=ddb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        encryption=ddb.TableEncryption.AWS_MANAGED,
        deletion_protection=True,
        removal_policy=RemovalPolicy.RETAIN,
    )
