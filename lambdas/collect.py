"""λ collect: answers arrived (MTurk notifications or A2I events on the answers queue) or the
fallback schedule fired -> fetch answers of open tasks, aggregate, update labels, retrain when
enough changed. The messages are only triggers: one collect pass serves the whole batch, and a
pass is idempotent, so redelivery is harmless."""

from __future__ import annotations

import logging

from lambdas import wiring
from lambdas.observability import bind, count, instrument, message_ids
from lambdas.review import budget_spent
from shared import env
from shared.messages import SqsEvent
from shared.ports import Ports, Workforce
from shared.relabel import collect

logger = logging.getLogger(__name__)


def handle_event(
    event: dict, ports: Ports, workforce: Workforce, summaries: list | None = None
) -> dict:
    """`summaries` (optional) gets the pass's `CollectSummary`."""
    summary = collect(ports, workforce)
    if summaries is not None:
        summaries.append(summary)
    logger.info("collect: %s", summary.to_json())
    if "Records" in event:  # from SQS: a failed pass raises, so the batch is redelivered
        SqsEvent.model_validate(event)
        return {"batchItemFailures": []}
    return summary.to_json()


@instrument
def handler(event: dict, context: object) -> dict:
    bind(message_ids=",".join(message_ids(event)) or None)
    workforce = wiring.workforce()
    summaries: list = []
    with budget_spent(workforce):
        response = handle_event(event, wiring.ports(), workforce, summaries)
    for summary in summaries:
        count(env.METRIC_ANSWERS_RECEIVED, summary.answers_received)
        count(env.METRIC_LABELS_CHANGED, summary.changed)
        count(env.METRIC_JOBS_SUBMITTED, 1 if summary.train_job else 0)
        bind(job_id=summary.train_job)
    return response
