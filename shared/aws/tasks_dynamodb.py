"""DynamoDB adapter of `TaskStore`.

Tasks table: partition `task_id`. GSI `by_status` (partition `status`) lists the open tasks
without a scan; GSI `by_external_id` (partition `external_id`) finds the task of an MTurk or A2I
notification. `external_id` is written only when set, so unpublished tasks stay out of that
index (a sparse index). GSI reads are eventually consistent: a task updated a moment ago may
still be listed under its old status; `find_by_external_id` re-reads the task consistently.
The key names are the schema, in `shared/keys.py`: `infra/` builds the table from them.

Worker records share the table (no new table, no new grant): partition `worker#<provider>#<id>`,
marked by a `record_type` attribute, without `status` or `external_id`, so they stay out of both
indexes; the scan of `list()` filters them out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from shared.aws.dynamodb import BODY, VERSION, _DynamoDBTable
from shared.errors import ConflictError, NotFoundError
from shared.keys import (
    TASKS_BY_EXTERNAL_ID_INDEX,
    TASKS_BY_STATUS_INDEX,
    TASKS_EXTERNAL_ID,
    TASKS_PARTITION_KEY,
    TASKS_STATUS,
)
from shared.ports import TaskStore, WorkerRecord
from shared.tasks import RelabelTask, TaskStatus, next_version

# The spend ledger is one item of the same table. Its key can never be a task id (those end
# in "#<round>"), and it has no status or external id, so it stays out of both indexes.
LEDGER_KEY = "ledger#workforce-spend"
LEDGER_SPENT = "spent"
RECORD_TYPE = "record_type"  # set on worker items only
WORKER_RECORD = "worker"
WORKER_KEY_PREFIX = "worker#"


class DynamoDBTaskStore(_DynamoDBTable, TaskStore):
    """Relabel tasks in one DynamoDB table (see the module docstring)."""

    def create(self, task: RelabelTask) -> bool:
        task = RelabelTask.model_validate(task.model_dump())  # a model_copy skips validation
        try:
            with self._errors():
                self.client.put_item(
                    TableName=self.table_name,
                    Item=_item(task),
                    ConditionExpression="attribute_not_exists(#pk)",
                    ExpressionAttributeNames={"#pk": TASKS_PARTITION_KEY},
                )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False  # already there: idempotent, never overwritten
            raise
        return True

    def get(self, task_id: str) -> RelabelTask | None:
        with self._errors():
            response = self.client.get_item(
                TableName=self.table_name,
                Key={TASKS_PARTITION_KEY: {"S": task_id}},
                ConsistentRead=True,
            )
        item = response.get("Item")
        return RelabelTask.model_validate_json(item[BODY]["S"]) if item else None

    def update(self, task: RelabelTask, expected_version: int) -> RelabelTask:
        stored = next_version(task, expected_version)
        try:
            with self._errors():
                self.client.put_item(
                    TableName=self.table_name,
                    Item=_item(stored),
                    ConditionExpression="attribute_exists(#pk) AND #v = :expected",
                    ExpressionAttributeNames={"#pk": TASKS_PARTITION_KEY, "#v": VERSION},
                    ExpressionAttributeValues={":expected": {"N": str(expected_version)}},
                )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
            if self.get(task.task_id) is None:
                raise NotFoundError(
                    f"relabel task {task.task_id!r} does not exist; create it first"
                ) from exc
            raise ConflictError(
                f"relabel task {task.task_id!r} is no longer at version {expected_version}; "
                "re-read it and decide again"
            ) from exc
        return stored

    def list(self, status: TaskStatus | None = None) -> Iterator[RelabelTask]:
        if status is None:
            items = self._pages(
                "scan",
                FilterExpression="attribute_not_exists(#t)",
                ExpressionAttributeNames={"#t": RECORD_TYPE},
            )
        else:
            items = self._pages(
                "query",
                IndexName=TASKS_BY_STATUS_INDEX,
                KeyConditionExpression="#s = :s",
                ExpressionAttributeNames={"#s": TASKS_STATUS},
                ExpressionAttributeValues={":s": {"S": status}},
            )
        for item in items:
            if BODY in item:  # the scan also meets the spend ledger item
                yield RelabelTask.model_validate_json(item[BODY]["S"])

    def add_spend(
        self, amount: Decimal, *, cap: Decimal, initial: Callable[[], Decimal]
    ) -> tuple[bool, Decimal]:
        """A conditional UpdateItem: the add happens only if the total stays within `cap`."""
        key = {TASKS_PARTITION_KEY: {"S": LEDGER_KEY}}
        if self._spent(key) is None:
            try:
                with self._errors():
                    self.client.put_item(
                        TableName=self.table_name,
                        Item={**key, LEDGER_SPENT: {"N": str(Decimal(initial()))}},
                        ConditionExpression="attribute_not_exists(#pk)",
                        ExpressionAttributeNames={"#pk": TASKS_PARTITION_KEY},
                    )
            except ClientError as exc:
                if _code(exc) != "ConditionalCheckFailedException":
                    raise  # else another process created it first: fine
        values = {":a": {"N": str(amount)}}
        condition = {}
        if amount > 0:  # giving back never fails
            values[":room"] = {"N": str(cap - amount)}
            condition = {"ConditionExpression": "#s <= :room"}
        try:
            with self._errors():
                response = self.client.update_item(
                    TableName=self.table_name,
                    Key=key,
                    UpdateExpression="SET #s = #s + :a",
                    ExpressionAttributeNames={"#s": LEDGER_SPENT},
                    ExpressionAttributeValues=values,
                    ReturnValues="UPDATED_NEW",
                    **condition,
                )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
            return False, self._spent(key) or Decimal(0)
        return True, Decimal(response["Attributes"][LEDGER_SPENT]["N"])

    def _spent(self, key: dict) -> Decimal | None:
        with self._errors():
            item = self.client.get_item(
                TableName=self.table_name, Key=key, ConsistentRead=True
            ).get("Item")
        return Decimal(item[LEDGER_SPENT]["N"]) if item else None

    def find_by_external_id(self, external_id: str) -> RelabelTask | None:
        items = self._pages(
            "query",
            IndexName=TASKS_BY_EXTERNAL_ID_INDEX,
            KeyConditionExpression="#e = :e",
            ExpressionAttributeNames={"#e": TASKS_EXTERNAL_ID},
            ExpressionAttributeValues={":e": {"S": external_id}},
        )
        task_ids = sorted(item[TASKS_PARTITION_KEY]["S"] for item in items)
        # The index is eventually consistent: read the task itself for its current state.
        return self.get(task_ids[0]) if task_ids else None

    def put_workers(self, workers: Iterable[WorkerRecord]) -> None:
        for worker in workers:
            with self._errors():
                self.client.put_item(
                    TableName=self.table_name,
                    Item={
                        TASKS_PARTITION_KEY: {
                            "S": f"{WORKER_KEY_PREFIX}{worker.provider}#{worker.worker_id}"
                        },
                        RECORD_TYPE: {"S": WORKER_RECORD},
                        BODY: {"S": json.dumps(worker.to_json())},
                    },
                )

    def workers(self, provider: str | None = None) -> Iterator[WorkerRecord]:
        prefix = WORKER_KEY_PREFIX + (f"{provider}#" if provider is not None else "")
        items = self._pages(
            "scan",
            FilterExpression="#t = :worker AND begins_with(#pk, :prefix)",
            ExpressionAttributeNames={"#t": RECORD_TYPE, "#pk": TASKS_PARTITION_KEY},
            ExpressionAttributeValues={":worker": {"S": WORKER_RECORD}, ":prefix": {"S": prefix}},
        )
        for item in items:
            yield WorkerRecord.from_json(json.loads(item[BODY]["S"]))


def _code(exc: ClientError) -> str | None:
    return exc.response.get("Error", {}).get("Code")


def _item(task: RelabelTask) -> dict[str, Any]:
    item: dict[str, Any] = {
        TASKS_PARTITION_KEY: {"S": task.task_id},
        TASKS_STATUS: {"S": task.status},
        VERSION: {"N": str(task.version)},
        BODY: {"S": task.model_dump_json()},
    }
    if task.external_id:  # an index key may not be empty; absent keeps the index sparse
        item[TASKS_EXTERNAL_ID] = {"S": task.external_id}
    return item


def create_tasks_table(client: Any, table_name: str) -> None:
    """Create the tasks table with its two indexes (tests, local DynamoDB); the CDK stack
    defines the same keys."""
    client.create_table(
        TableName=table_name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"}
            for name in (TASKS_PARTITION_KEY, TASKS_STATUS, TASKS_EXTERNAL_ID)
        ],
        KeySchema=[{"AttributeName": TASKS_PARTITION_KEY, "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": index,
                "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
                "Projection": {"ProjectionType": projection},
            }
            for index, key, projection in (
                (TASKS_BY_STATUS_INDEX, TASKS_STATUS, "ALL"),
                # Only the task id: the task itself is then read consistently.
                (TASKS_BY_EXTERNAL_ID_INDEX, TASKS_EXTERNAL_ID, "KEYS_ONLY"),
            )
        ],
    )
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1})
