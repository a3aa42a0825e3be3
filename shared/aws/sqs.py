"""The SQS adapter of the `MessageQueue` port."""

from __future__ import annotations

from typing import Any

from shared.ports import MessageQueue, QueueError


class SqsMessageQueue(MessageQueue):
    def __init__(self, queue_url: str, *, client: Any = None):
        self.queue_url = queue_url
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("sqs")
        return self._client

    def send(self, body: str) -> str:
        from botocore.exceptions import ClientError

        try:
            return self.client.send_message(QueueUrl=self.queue_url, MessageBody=body)["MessageId"]
        except ClientError as exc:
            raise QueueError(f"cannot send to {self.queue_url}: {exc}") from exc
