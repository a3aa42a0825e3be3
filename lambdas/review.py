"""λ review: a "review now" message (after inference) -> suspicious labels -> relabel tasks
published through the configured workforce, within its budget. Idempotent: a task exists once
per (image, facet, label version), so a redelivered message publishes nothing twice.

Two kinds of message (lambdas/batch_events.py): a round of the relabel loop (`round`: the
catalog was re-inferred with a newly promoted model; the whole catalog is ranked on its
judging probabilities (shared/relabel.py), unless the previous round changed fewer than
DRESSVISION_LOOP_MIN_CHANGES labels: the loop has converged), and the review of what one
inference job tagged (`manifest`: only those images are read, ranked with the thresholds the
model's round stored)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import BaseModel, ValidationError

from lambdas import wiring
from lambdas.observability import bind, count, instrument, usd
from shared import env
from shared.errors import DressvisionError
from shared.inference import current_model_version
from shared.messages import SqsEvent
from shared.ports import Ports, Workforce
from shared.relabel import loop_converged, manifest_image_ids, publish_tasks, review_labels

logger = logging.getLogger(__name__)

DEFAULT_LIMIT = 200  # tasks per review: people's time is the scarce resource


class ReviewRequest(BaseModel):
    model_version: str | None = None
    facet: str | None = None
    limit: int = DEFAULT_LIMIT
    job_id: str | None = None
    manifest: str | None = None  # review only the images of this inference manifest
    round: bool = False  # the catalog was re-inferred with a new model: the loop's next round


def review(ports: Ports, workforce: Workforce, request: ReviewRequest) -> dict:
    version = request.model_version or current_model_version(ports)
    if version is None:
        return {"published": 0, "reason": "no model yet"}
    if request.round and (converged := loop_converged(ports)):
        # No new round; the ranking still runs once, to store the model's thresholds for the
        # reviews of later uploads.
        review_labels(ports, version, budget_tasks=0, store_thresholds=True)
        logger.info("relabel loop: %s; no new round", converged)
        return {"published": 0, "reason": converged}
    image_ids = manifest_image_ids(ports, request.manifest) if request.manifest else None
    found = review_labels(
        ports,
        version,
        facet=request.facet,
        image_ids=image_ids,
        budget_tasks=request.limit,
        store_thresholds=True,
    )
    if warning := found.coverage_warning():
        logger.warning(warning)
    summary = publish_tasks(
        ports, workforce, found.suspects, max_assignments=ports.settings.max_assignments
    )
    logger.info("review of %s: %d suspicious, %s", version, len(found.suspects), summary)
    return {
        "suspicious": len(found.suspects),
        "created": summary.created,
        "published": summary.published,
        "budget_exhausted": summary.budget_exhausted,
        **found.coverage_json(),
    }


def handle_sqs_batch(
    event: dict, ports: Ports, workforce: Workforce, published: list[int] | None = None
) -> dict:
    """`published` (optional) gets the number of tasks each review published."""
    failures = []
    for message in SqsEvent.model_validate(event).records:
        bind(message_id=message.message_id)
        try:
            summary = review(
                ports, workforce, ReviewRequest.model_validate(json.loads(message.body))
            )
            if published is not None:
                published.append(summary["published"])
        except (ValidationError, ValueError, DressvisionError) as exc:
            logger.error("review message %s failed: %s", message.message_id, exc)
            failures.append({"itemIdentifier": message.message_id})
    return {"batchItemFailures": failures}


@instrument
def handler(event: dict, context: object) -> dict:
    workforce = wiring.workforce()
    published: list[int] = []
    with budget_spent(workforce):
        response = handle_sqs_batch(event, wiring.ports(), workforce, published)
    count(env.METRIC_TASKS_PUBLISHED, sum(published))
    return response


@contextmanager
def budget_spent(workforce: Workforce) -> Iterator[None]:
    """Around a call that may pay a workforce: the spend and what is left, as metrics (only
    for workforces with a budget: MTurk)."""
    left = getattr(workforce, "budget_left_usd", None)
    before = left() if left else None
    yield
    if left is not None:
        after = left()
        usd(env.METRIC_BUDGET_SPENT_USD, before - after)
        usd(env.METRIC_BUDGET_LEFT_USD, after)
