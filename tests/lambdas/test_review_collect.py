"""λ review and λ collect: a "review now" message publishes tasks (a broken message fails
alone), answers are collected on an SQS trigger or on the schedule."""

from __future__ import annotations

import json

import pytest

from lambdas import collect as collect_lambda
from lambdas import review as review_lambda


@pytest.fixture
def ports(relabel_ports):
    return relabel_ports


def test_review_and_collect_lambdas(ports, crowd):
    message = {
        "Records": [
            {"messageId": "m1", "body": json.dumps({"model_version": "v1"})},
            {"messageId": "m2", "body": "{broken"},
        ]
    }
    response = review_lambda.handle_sqs_batch(message, ports, crowd)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert len(list(ports.tasks.list())) == 5
    assert collect_lambda.handle_event({"Records": []}, ports, crowd) == {"batchItemFailures": []}
    still_open = list(ports.tasks.list("open"))
    assert still_open  # the first pass left tasks that asked for more answers
    summary = collect_lambda.handle_event({"source": "aws.events"}, ports, crowd)
    # the schedule's pass reports on every task that was open, with the votes it counted
    outcomes = ("decided", "asked_more", "escalated", "conflicts", "waiting")
    assert sum(summary[k] for k in outcomes) == len(still_open)
    assert summary["votes"] == sum(len(ports.tasks.get(t.task_id).votes) for t in still_open)
