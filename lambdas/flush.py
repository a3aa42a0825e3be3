"""λ flush: every inference window (an EventBridge schedule), submit the uploads waiting for
inference as few large array jobs (`shared.inference.flush_pending`).

Ingest only appends to the pending list; this function, run once per
`DRESSVISION_INFER_WINDOW_SECONDS` with a reserved concurrency of one, turns the window's
uploads into one array job per `DRESSVISION_INFER_WINDOW_IMAGES` images. A failed submission
raises (the invocation fails, the schedule's alarm on errors fires after repeated failures)
and deletes nothing: the next window submits the same images.
"""

from __future__ import annotations

import logging

from lambdas import wiring
from lambdas.observability import count, instrument
from shared import env
from shared.inference import flush_pending

logger = logging.getLogger(__name__)


@instrument
def handler(event: dict, context: object) -> dict:
    jobs = flush_pending(wiring.ports())
    count(env.METRIC_JOBS_SUBMITTED, len(jobs))
    logger.info("inference window flushed: %d jobs", len(jobs))
    return {"jobs": jobs}
