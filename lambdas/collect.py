"""λ collect: answers arrived (MTurk notifications or A2I events on the answers queue) or the
fallback schedule fired -> fetch answers of open tasks, aggregate, update labels, retrain when
enough changed. The messages are only triggers: one collect pass serves the whole batch, and a
pass is idempotent, so redelivery is harmless."""

from __future__ import annotations

import logging

from lambdas import wiring
from shared.messages import SqsEvent
from shared.ports import Ports, Workforce
from shared.relabel import collect

logger = logging.getLogger(__name__)


def handle_event(event: dict, ports: Ports, workforce: Workforce) -> dict:
    summary = collect(ports, workforce)
    logger.info("collect: %s", summary.to_json())
    if "Records" in event:  # from SQS: a failed pass raises, so the batch is redelivered
        SqsEvent.model_validate(event)
        return {"batchItemFailures": []}
    return summary.to_json()


def handler(event: dict, context: object) -> dict:
    return handle_event(event, wiring.ports(), wiring.workforce())
