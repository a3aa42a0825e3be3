"""In-process queues with the SQS semantics the handlers rely on: at-least-once delivery in
batches, partial batch failures, redrive to a dead-letter queue after `max_receive_count`."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.ports import MessageQueue

BatchHandler = Callable[[dict], dict]  # SQS event -> {"batchItemFailures": [...]}


@dataclass
class _Message:
    body: str
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    receive_count: int = 0


class LocalQueue(MessageQueue):
    """A thread-safe FIFO with an attached dead-letter queue."""

    def __init__(self, name: str, *, max_receive_count: int = 3, batch_size: int = 10):
        self.name = name
        self.max_receive_count = max_receive_count
        self.batch_size = batch_size
        self.dead_letters: list[_Message] = []
        self._messages: deque[_Message] = deque()
        self._lock = threading.Lock()

    def send(self, body: str) -> str:
        message = _Message(body)
        with self._lock:
            self._messages.append(message)
        return message.message_id

    def __len__(self) -> int:
        with self._lock:
            return len(self._messages)

    def _receive(self) -> list[_Message]:
        with self._lock:
            batch = [
                self._messages.popleft() for _ in range(min(self.batch_size, len(self._messages)))
            ]
        for message in batch:
            message.receive_count += 1
        return batch

    def _sqs_event(self, batch: list[_Message]) -> dict:
        arn = f"arn:aws:sqs:local:000000000000:{self.name}"
        return {
            "Records": [
                {
                    "messageId": m.message_id,
                    "receiptHandle": f"{m.message_id}#{m.receive_count}",
                    "body": m.body,
                    "attributes": {"ApproximateReceiveCount": str(m.receive_count)},
                    "messageAttributes": {},
                    "md5OfBody": hashlib.md5(m.body.encode()).hexdigest(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": arn,
                    "awsRegion": "local",
                }
                for m in batch
            ]
        }

    def deliver(self, handler: BatchHandler) -> int:
        """Deliver one batch to `handler`; failed messages return to the queue or, past
        `max_receive_count`, go to the dead-letter queue. Returns how many were delivered."""
        batch = self._receive()
        if not batch:
            return 0
        try:
            response = handler(self._sqs_event(batch))
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except Exception:  # a crashed invocation fails the whole batch, as on Lambda
            failed = {m.message_id for m in batch}
        for message in batch:
            if message.message_id not in failed:
                continue
            if message.receive_count >= self.max_receive_count:
                self.dead_letters.append(message)
            else:
                with self._lock:
                    self._messages.append(message)
        return len(batch)
