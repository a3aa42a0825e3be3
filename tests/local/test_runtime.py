"""The local event loop behaves like SQS + Lambda: redelivery, then the dead-letter queue."""

from __future__ import annotations

from local.runtime import LocalRuntime
from shared.embedded.queues import LocalQueue


def test_failed_messages_are_redelivered_then_dead_lettered():
    queue = LocalQueue("q", max_receive_count=3, batch_size=10)
    queue.send("good")
    queue.send("poison")
    seen: list[str] = []

    def handler(event):
        seen.extend(r["body"] for r in event["Records"])
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]}
                for r in event["Records"]
                if r["body"] == "poison"
            ]
        }

    while queue.deliver(handler):
        pass
    assert seen.count("good") == 1
    assert seen.count("poison") == 3
    assert [m.body for m in queue.dead_letters] == ["poison"]


def test_a_crashing_handler_fails_the_whole_batch():
    queue = LocalQueue("q", max_receive_count=1)
    queue.send("a")
    queue.deliver(lambda event: 1 / 0)
    assert [m.body for m in queue.dead_letters] == ["a"]


def test_a_poison_notification_ends_in_the_runtime_dead_letter_queue(tmp_path, make_jpeg):
    runtime = LocalRuntime.open(tmp_path)
    runtime.upload("catalog/p1/a.jpg", make_jpeg())
    runtime.ingest_queue.send("{this is not json")
    runtime.drain()
    assert runtime.ports.labels.get("p1/a") is not None
    assert runtime.dead_letters == ["{this is not json"]
