"""Submitting training jobs: the deployment's recipe, and a fresh deployment's first training.

Every training a handler submits carries the whole recipe (`shared.recipe`) built from the
deployment's settings, so the Batch job trains exactly what `dressvision train` trains here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, datetime

from shared.keys import FIRST_TRAINING_KEY
from shared.messages import JobRequest
from shared.ports import Ports
from shared.recipe import TrainingRecipe
from shared.records import ImageStatus
from shared.registry import ModelKind, ModelRegistry

logger = logging.getLogger(__name__)
JSON = "application/json"


def training_request(ports: Ports, holdout_fold: int | None = None) -> JobRequest:
    """The train job of this deployment's recipe, every option written out. The relabel loop
    passes `holdout_fold`: with `DRESSVISION_LOOP_HOLDOUT_FOLDS` set, that fold of the train
    products is left out of the training and judged by the new model."""
    recipe = TrainingRecipe.from_settings(ports.settings)
    folds = ports.settings.loop_holdout_folds
    if holdout_fold is not None and folds:
        recipe = replace(recipe, holdout_folds=folds, holdout_fold=holdout_fold % folds)
    return JobRequest(name="train", args=recipe.to_args())


def has_labeled_images(ports: Ports, minimum: int) -> bool:
    """Whether at least `minimum` usable images have a label for some facet (stops scanning
    as soon as it knows)."""
    count = 0
    for record in ports.labels.scan():
        if record.status == ImageStatus.OK and any(v is not None for v in record.facets.values()):
            count += 1
            if count >= minimum:
                return True
    return False


def maybe_first_training(ports: Ports) -> str | None:
    """Submit a fresh deployment's first training once `first_train_min_images` labeled images
    are registered and no facet model is current. Returns the job id, or None when nothing was
    submitted.

    Once per deployment, however many ingest batches race here: the first caller to create
    `FIRST_TRAINING_KEY` submits, the others find it there. A failed submission removes the
    key again, so that the next batch (or the redelivery of this one) tries again. The recipe's
    `--locator auto` trains the locator first, as no locator is current on a fresh deployment.
    """
    minimum = ports.settings.first_train_min_images
    if minimum <= 0 or ModelRegistry(ports.artifacts).current(ModelKind.FACETS) is not None:
        return None
    if ports.artifacts.exists(FIRST_TRAINING_KEY) or not has_labeled_images(ports, minimum):
        return None
    claim = {"at": datetime.now(UTC).isoformat(), "labeled_images_at_least": minimum}
    body = json.dumps(claim).encode()
    if not ports.artifacts.put_if_absent(FIRST_TRAINING_KEY, body, content_type=JSON):
        return None  # another batch claimed it a moment ago
    try:
        job_id = ports.jobs.submit(training_request(ports))
    except Exception:
        ports.artifacts.delete(FIRST_TRAINING_KEY)
        raise
    record = json.dumps({**claim, "job_id": job_id}).encode()
    ports.artifacts.put(FIRST_TRAINING_KEY, record, content_type=JSON)
    logger.info("%d+ labeled images, no model: submitted the first training %s", minimum, job_id)
    return job_id
