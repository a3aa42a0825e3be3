"""DynamoDB adapters of `LabelStore` and `PredictionStore`.

Labels table: partition `image_id`, sort `sk`. The current record is `sk = "LABEL"`; each label
event is `sk = "EVENT#<iso time>#<version>#<facet>"` in the same partition, so a record and its
events are written in one transaction and read with one Query. Predictions table: partition
`image_id`, sort `model_version`, GSI `by_model` (partition `model_version`, sort `image_id`).
Record bodies are JSON strings (no float/Decimal round trips); key attributes sit next to them.
The key names are the schema, in `shared/keys.py`: `infra/` builds the tables from them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC
from typing import Any

from botocore.exceptions import ClientError

from shared.errors import ConfigurationError, ConflictError, NotFoundError, StoreThrottledError
from shared.keys import (
    LABELS_PARTITION_KEY,
    LABELS_SORT_KEY,
    PREDICTIONS_BY_MODEL_INDEX,
    PREDICTIONS_PARTITION_KEY,
    PREDICTIONS_SORT_KEY,
)
from shared.ports import (
    LabelStore,
    PredictionStore,
    RegisterOutcome,
    apply_label_update,
    merge_registration,
)
from shared.records import LabelEvent, LabelRecord, LabelSource, PredictionRecord

LABEL_SK = "LABEL"
EVENT_SK_PREFIX = "EVENT#"
BODY = "body"  # the record's JSON
VERSION = "version"  # the label record's optimistic-lock counter, a number

PAGE_SIZE = 500  # items per Scan/Query page
BATCH_WRITE_SIZE = 25  # BatchWriteItem's limit
BATCH_ATTEMPTS = 8  # requests per batch while DynamoDB leaves items unprocessed
REGISTER_ATTEMPTS = 10  # concurrent uploads of one image are rare; 10 conflicts in a row is a bug

# Why a transaction was cancelled that means "someone else wrote first": re-read and retry.
_CONFLICT_REASONS = {"ConditionalCheckFailed", "TransactionConflict"}


class _DynamoDBTable:
    """One table and a boto3 client, created on first use unless injected."""

    def __init__(self, table_name: str, *, client: Any = None):
        self.table_name = table_name
        self._client = client
        self._client_lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._client_lock:  # creating clients from the default session is not thread-safe
                if self._client is None:
                    import boto3

                    self._client = boto3.client("dynamodb")
        return self._client

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Setup mistakes become `ConfigurationError`; other errors pass unchanged."""
        try:
            yield
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "ResourceNotFoundException":
                raise ConfigurationError(
                    f"DynamoDB table {self.table_name!r} does not exist: deploy the stack or "
                    "fix the table name setting"
                ) from exc
            if code == "AccessDeniedException":
                raise ConfigurationError(
                    f"no permission on DynamoDB table {self.table_name!r}: grant this role "
                    "read/write access to it"
                ) from exc
            raise

    def _pages(self, operation: str, **kwargs: Any) -> Iterator[dict]:
        """Every item of a paginated Scan or Query."""
        paginator = self.client.get_paginator(operation)
        config = {"PageSize": PAGE_SIZE}
        with self._errors():
            for page in paginator.paginate(
                TableName=self.table_name, PaginationConfig=config, **kwargs
            ):
                yield from page.get("Items", [])


class DynamoDBLabelStore(_DynamoDBTable, LabelStore):
    """Labels and label events in one DynamoDB table (see the module docstring)."""

    def get(self, image_id: str) -> LabelRecord | None:
        with self._errors():
            response = self.client.get_item(
                TableName=self.table_name, Key=_label_key(image_id), ConsistentRead=True
            )
        item = response.get("Item")
        return LabelRecord.model_validate_json(item[BODY]["S"]) if item else None

    def register(self, record: LabelRecord) -> tuple[RegisterOutcome, LabelRecord]:
        for _ in range(REGISTER_ATTEMPTS):
            existing = self.get(record.image_id)
            outcome, merged, events = merge_registration(existing, record)
            if outcome is RegisterOutcome.UNCHANGED:
                return outcome, merged
            try:
                self._write(merged, events, expected_version=existing.version if existing else None)
            except ConflictError:
                continue  # another upload or a relabel got there first: merge with what it wrote
            return outcome, merged
        raise ConflictError(
            f"registering {record.image_id!r} conflicted {REGISTER_ATTEMPTS} times in a row; "
            "retry the upload later"
        )

    def update_label(
        self,
        image_id: str,
        facet: str,
        label: str | None,
        *,
        source: LabelSource,
        expected_version: int,
        evidence: Mapping | None = None,
    ) -> LabelRecord:
        """See `LabelStore.update_label`: the record and its event in one transaction."""
        existing = self.get(image_id)
        if existing is None:
            raise NotFoundError(f"image {image_id!r} is not registered; import it first")
        record, event = apply_label_update(existing, facet, label, source=source, evidence=evidence)
        self._write(record, [event], expected_version=expected_version)
        return record

    def events(self, image_id: str) -> list[LabelEvent]:
        items = self._pages(
            "query",
            KeyConditionExpression="#pk = :id AND begins_with(#sk, :prefix)",
            ExpressionAttributeNames={"#pk": LABELS_PARTITION_KEY, "#sk": LABELS_SORT_KEY},
            ExpressionAttributeValues={":id": {"S": image_id}, ":prefix": {"S": EVENT_SK_PREFIX}},
            ConsistentRead=True,
        )
        events = [LabelEvent.model_validate_json(item[BODY]["S"]) for item in items]
        # The sort key orders by time; clocks of different writers may disagree, the version
        # cannot (a stable sort keeps time order among the events of one version).
        return sorted(events, key=lambda event: event.version)

    def scan(self) -> Iterator[LabelRecord]:
        items = self._pages(
            "scan",
            FilterExpression="#sk = :label",
            ExpressionAttributeNames={"#sk": LABELS_SORT_KEY},
            ExpressionAttributeValues={":label": {"S": LABEL_SK}},
        )
        for item in items:
            yield LabelRecord.model_validate_json(item[BODY]["S"])

    def _write(
        self, record: LabelRecord, events: list[LabelEvent], *, expected_version: int | None
    ) -> None:
        """Put `record` and its events in one transaction, if the stored record is still at
        `expected_version` (None: if there is none yet). `ConflictError` otherwise."""
        if expected_version is None:
            condition: dict[str, Any] = {
                "ConditionExpression": "attribute_not_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": LABELS_PARTITION_KEY},
            }
        else:
            condition = {
                "ConditionExpression": "#v = :expected",
                "ExpressionAttributeNames": {"#v": VERSION},
                "ExpressionAttributeValues": {":expected": {"N": str(expected_version)}},
            }
        items = [{"Put": {"TableName": self.table_name, "Item": _label_item(record), **condition}}]
        items += [{"Put": {"TableName": self.table_name, "Item": _event_item(e)}} for e in events]
        try:
            with self._errors():
                self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            reasons = {r.get("Code") for r in exc.response.get("CancellationReasons", [])}
            if reasons & _CONFLICT_REASONS:
                raise ConflictError(
                    f"label record {record.image_id!r} is no longer at version "
                    f"{expected_version}; re-read it and decide again"
                ) from exc
            raise


def _label_key(image_id: str) -> dict:
    return {LABELS_PARTITION_KEY: {"S": image_id}, LABELS_SORT_KEY: {"S": LABEL_SK}}


def _label_item(record: LabelRecord) -> dict:
    return {
        **_label_key(record.image_id),
        VERSION: {"N": str(record.version)},
        BODY: {"S": record.model_dump_json()},
    }


def _event_sort_key(event: LabelEvent) -> str:
    """`EVENT#<UTC time, fixed width>#<version, zero-padded>#<facet>`: sorts oldest first."""
    at = event.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{EVENT_SK_PREFIX}{at}#{event.version:010d}#{event.facet}"


def _event_item(event: LabelEvent) -> dict:
    return {
        LABELS_PARTITION_KEY: {"S": event.image_id},
        LABELS_SORT_KEY: {"S": _event_sort_key(event)},
        BODY: {"S": event.model_dump_json()},
    }


class DynamoDBPredictionStore(_DynamoDBTable, PredictionStore):
    """Predictions in a DynamoDB table keyed by (image id, model version)."""

    def put(self, record: PredictionRecord) -> None:
        item = {
            **_prediction_key(record.image_id, record.model_version),
            BODY: {"S": record.model_dump_json()},
        }
        with self._errors():
            self.client.put_item(TableName=self.table_name, Item=item)

    def put_many(self, records: Sequence[PredictionRecord]) -> None:
        """BatchWriteItem, 25 items a request; what DynamoDB leaves unprocessed (throttling) is
        sent again with a growing pause, and an error after `BATCH_ATTEMPTS` requests."""
        latest = {(r.image_id, r.model_version): r for r in records}  # a batch refuses twins
        items = [
            {
                "PutRequest": {
                    "Item": {
                        **_prediction_key(r.image_id, r.model_version),
                        BODY: {"S": r.model_dump_json()},
                    }
                }
            }
            for r in latest.values()
        ]
        for start in range(0, len(items), BATCH_WRITE_SIZE):
            pending = items[start : start + BATCH_WRITE_SIZE]
            for attempt in range(BATCH_ATTEMPTS):
                with self._errors():
                    response = self.client.batch_write_item(RequestItems={self.table_name: pending})
                pending = response.get("UnprocessedItems", {}).get(self.table_name, [])
                if not pending:
                    break
                time.sleep(min(2.0, 0.05 * 2**attempt))
            else:
                raise StoreThrottledError(
                    f"DynamoDB left {len(pending)} predictions unprocessed after "
                    f"{BATCH_ATTEMPTS} attempts (throttled); the job can be retried"
                )

    def get(self, image_id: str, model_version: str) -> PredictionRecord | None:
        with self._errors():
            response = self.client.get_item(
                TableName=self.table_name, Key=_prediction_key(image_id, model_version)
            )
        item = response.get("Item")
        return PredictionRecord.model_validate_json(item[BODY]["S"]) if item else None

    def for_model(self, model_version: str) -> Iterator[PredictionRecord]:
        items = self._pages(
            "query",
            IndexName=PREDICTIONS_BY_MODEL_INDEX,
            KeyConditionExpression="#m = :m",
            ExpressionAttributeNames={"#m": PREDICTIONS_SORT_KEY},
            ExpressionAttributeValues={":m": {"S": model_version}},
        )
        for item in items:
            yield PredictionRecord.model_validate_json(item[BODY]["S"])


def _prediction_key(image_id: str, model_version: str) -> dict:
    return {
        PREDICTIONS_PARTITION_KEY: {"S": image_id},
        PREDICTIONS_SORT_KEY: {"S": model_version},
    }


def create_labels_table(client: Any, table_name: str) -> None:
    """Create the labels table (tests, local DynamoDB); the CDK stack defines the same keys."""
    client.create_table(
        TableName=table_name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": LABELS_PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": LABELS_SORT_KEY, "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": LABELS_PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": LABELS_SORT_KEY, "KeyType": "RANGE"},
        ],
    )
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1})


def create_predictions_table(client: Any, table_name: str) -> None:
    """Create the predictions table with its `by_model` index (tests, local DynamoDB)."""
    client.create_table(
        TableName=table_name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": PREDICTIONS_PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": PREDICTIONS_SORT_KEY, "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": PREDICTIONS_PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": PREDICTIONS_SORT_KEY, "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": PREDICTIONS_BY_MODEL_INDEX,
                "KeySchema": [
                    {"AttributeName": PREDICTIONS_SORT_KEY, "KeyType": "HASH"},
                    {"AttributeName": PREDICTIONS_PARTITION_KEY, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1})


def create_tables(client: Any, labels_table: str, predictions_table: str) -> None:
    """Create both tables."""
    create_labels_table(client, labels_table)
    create_predictions_table(client, predictions_table)
