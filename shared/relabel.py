"""Humans in the loop: suspicious labels -> relabel tasks -> votes -> label updates -> retrain.

Plain functions over the ports, shared by the review and collect Lambdas and the CLI.

- `review_labels` (and `find_suspicious`, its list): the catalog labels the model disagrees
  with (its most probable class is another: cleanlab's "predicted_neq_given" filter,
  shared/suspicious.py), the likeliest mistakes first across facets (self-confidence over the
  class threshold, as in confident learning), cut at a task budget. It needs probabilities
  that did not simply learn the label: a test image's come from the model itself (it never
  trained on the test split); a train image's from what the training job stores under
  `oof_version(version)`: its training dynamics by default (each image's probabilities averaged
  over the first half of the training, before the network memorises wrong labels,
  batch_jobs/dynamics.py), or with `--oof-folds K` the out-of-fold predictions of K fold
  models. Images without them are not judged, and `Review` counts them so that callers say
  so. Only catalog labels are flagged: a label that staff or the crowd set or confirmed was
  decided by people (it still counts in the thresholds). Over a few images (what
  one inference job tagged) it reads only those, with the thresholds the model's whole-catalog
  review stored. A facet is the product's: the photos of one product that carry the same
  label are judged together (their probabilities averaged) and make one suspect. With
  DRESSVISION_REVIEW_DOUBT (0.85) a label is also flagged when its probability is below that
  share of its class's mean, though it is the model's top class (a half-memorised flip).
- `loop_converged`: the rounds stop once a round changed fewer than
  DRESSVISION_LOOP_MIN_CHANGES labels.
- `publish_tasks`: one task per (image, facet, label version), so a re-run publishes nothing
  twice; stops at the workforce's budget. The task shows one photo and names the product's
  others (`siblings`); its decision sets theirs too, unless people labelled one since.
- `collect`: fetch answers, aggregate every facet's votes with Dawid-Skene (worker reliability
  estimated across all tasks; the model's suggestion joins as one more answer, `MODEL_WITNESS`,
  whose reliability is estimated the same way), then decide each open task (two people must
  agree; undecided, it asks DRESSVISION_ASK_STEP more answers): update the label (optimistic
  locking, a label event with the votes), ask for more answers, or escalate to staff. A label
  that changed after the task was published is never overwritten: the conflict is recorded.
  Faults stay local: a task whose answers cannot be read or decided fails alone (the error is
  recorded on it as `note`, `failures` counts) and the pass goes on; a task still open past
  its deadline (`DRESSVISION_TASK_DEADLINE_HOURS`: a failed or expired A2I loop, an unanswered
  HIT) goes to staff; a task whose facet or labels left the taxonomy is closed with a note.
- `maybe_retrain`: submit training (the deployment's recipe, `shared.training`) once enough
  labels changed since the last one.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np

from shared.aggregation import (
    AggregationConfig,
    Outcome,
    dawid_skene,
    decide,
    summarize_workers,
)
from shared.env import LOOP_MIN_CHANGES
from shared.errors import BudgetExceededError, ConfigurationError, ConflictError, NotFoundError
from shared.image_links import image_link
from shared.keys import (
    SNAPSHOT_PREFIX,
    TRAIN_REQUEST_KEY,
    review_thresholds_key,
    snapshot_id_of,
)
from shared.messages import ManifestEntry
from shared.ports import Ports, WorkerRecord, Workforce
from shared.records import ImageStatus, LabelRecord, LabelSource
from shared.registry import parse_stamp
from shared.suspicious import per_class_thresholds, rank_suspicious
from shared.tasks import RelabelTask, Vote
from shared.training import training_request

logger = logging.getLogger(__name__)


def _ids(task_id: str) -> dict[str, str]:
    """A task-level log line's structured keys: in a Lambda the JSON formatter prints each as
    its own field, so an operator finds every line of a task by `task_id`."""
    return {"task_id": task_id}


OOF_SUFFIX = "+oof"
# Which labels a review flags (shared/suspicious.py FILTERS): those whose judging probabilities'
# most probable class is another one, likeliest first.
REVIEW_FILTER = "predicted_neq_given"
UPDATE_ATTEMPTS = 5
# How long a task's signed image link works: a HIT lives a week and more answers can be asked
# for after that, so twice that.
TASK_LINK_LIFETIME_S = 14 * 24 * 3600


def oof_version(model_version: str) -> str:
    """The PredictionStore version under which a model's judging probabilities of the train
    split are kept (its training dynamics, or its fold models' out-of-fold predictions)."""
    return f"{model_version}{OOF_SUFFIX}"


@dataclass(frozen=True)
class SuspiciousLabel:
    image_id: str
    facet: str
    label: str
    suggested: str
    confidence: float  # the model's probability of `suggested`
    margin: float  # p(suggested) - p(label)
    self_confidence: float = 0.0  # p(label): low = likely wrong
    score: float = 0.0  # p(label) / the label's class threshold: the ranking key, ascending
    # The product's other photos with the same catalog label, judged with this one (the
    # figures above are the product's: its photos' probabilities averaged).
    siblings: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {
            "image_id": self.image_id,
            "facet": self.facet,
            "label": self.label,
            "suggested": self.suggested,
            "confidence": round(self.confidence, 4),
        }


@dataclass
class Review:
    """One ranking: the suspects in spending order (across facets), and what it could not see.

    labelled: usable images with a label of a reviewed facet; without_predictions: how many of
    those have no judging probabilities of this model (a model trained with `--no-dynamics`
    and no `--oof-folds` has none for the train split), so their labels were NOT judged."""

    model_version: str
    suspects: list[SuspiciousLabel]
    labelled: int = 0
    without_predictions: int = 0

    def coverage_warning(self) -> str | None:
        if not self.without_predictions:
            return None
        return (
            f"{self.without_predictions} of {self.labelled} labelled images have no "
            f"judging probabilities of model {self.model_version} and were not reviewed: "
            "train with --dynamics (the default) or --oof-folds 2 or more to review the train "
            "split"
        )

    def coverage_json(self) -> dict:
        return {"labelled": self.labelled, "without_predictions": self.without_predictions}


def _probs_of(prediction) -> dict[str, list[float]]:
    return {f: p.probs for f, p in prediction.facets.items()}


def _out_of_sample_probs(
    ports: Ports, model_version: str, records: list[LabelRecord]
) -> dict[str, dict[str, list[float]]]:
    """image id -> facet -> probability vector, from predictions no model trained on
    (the whole model version: two reads of the prediction store, no per-image lookups)."""
    test = {p.image_id: p for p in ports.predictions.for_model(model_version)}
    oof = {p.image_id: p for p in ports.predictions.for_model(oof_version(model_version))}
    probs: dict[str, dict[str, list[float]]] = {}
    for record in records:
        source = test if record.split == "test" else oof
        prediction = source.get(record.image_id)
        if prediction is not None:
            probs[record.image_id] = _probs_of(prediction)
    return probs


def _few_out_of_sample_probs(
    ports: Ports, model_version: str, records: list[LabelRecord]
) -> dict[str, dict[str, list[float]]]:
    """The same for a few images: one prediction read each."""
    probs = {}
    for record in records:
        version = model_version if record.split == "test" else oof_version(model_version)
        prediction = ports.predictions.get(record.image_id, version)
        if prediction is not None:
            probs[record.image_id] = _probs_of(prediction)
    return probs


def _load_thresholds(ports: Ports, model_version: str) -> dict[str, list[float]] | None:
    try:
        body = ports.artifacts.get(review_thresholds_key(model_version)).body
    except NotFoundError:
        return None
    return {f: [float(v) for v in t] for f, t in json.loads(body)["thresholds"].items()}


def _store_thresholds(ports: Ports, model_version: str, thresholds: dict[str, np.ndarray]) -> None:
    known = _load_thresholds(ports, model_version) or {}
    known.update(
        {f: [float(v) if np.isfinite(v) else None for v in t] for f, t in thresholds.items()}
    )
    body = json.dumps({"model_version": model_version, "thresholds": known}).encode()
    ports.artifacts.put(review_thresholds_key(model_version), body, content_type="application/json")


def review_labels(
    ports: Ports,
    model_version: str,
    *,
    facet: str | None = None,
    image_ids: list[str] | None = None,
    budget_tasks: int | None = None,
    store_thresholds: bool = False,
    by_product: bool = True,
) -> Review:
    """Rank the catalog labels this model confidently disagrees with, across facets, the
    likeliest mistakes first; keep the first `budget_tasks`.

    Whole catalog (image_ids None): one scan of the labels and two reads of the model's
    predictions; with `store_thresholds` (the review Lambda's rounds: the web app and the CLI
    only read), the per-class thresholds are stored with the model (`review_thresholds_key`).
    A few images (the ones an inference job just tagged): only their labels and predictions
    are read, and ranked with the stored thresholds of the model's whole distribution (the
    thresholds are a mean over thousands of labels: a few new images would not move them);
    without stored thresholds, the whole catalog is read once to compute them.

    Only catalog labels are flagged: a label people set or confirmed (a decided task leaves
    source crowd or staff on it) is theirs, and one with an open or escalated task is being
    decided; both still count in the thresholds.

    `by_product` (the default): a facet is the product's, so the photos of one product that
    carry the same label are judged as one (`product_groups`): one suspect, one task, whose
    answer sets the label of all of them (`siblings`). False judges every photo on its own
    (what bench/loop.py compares with).
    """
    taxonomy = ports.taxonomy
    facets = [facet] if facet else list(taxonomy.facet_names)
    for name in facets:
        taxonomy.labels(name)  # an unknown facet is an error naming the known ones
    if budget_tasks is not None and budget_tasks < 0:
        raise ValueError(f"the task budget must be >= 0, got {budget_tasks}")
    stored = _load_thresholds(ports, model_version) if image_ids is not None else None
    if image_ids is not None and stored is not None:
        records = [r for i in sorted(set(image_ids)) if (r := ports.labels.get(i)) is not None]
        usable = [r for r in records if r.status == ImageStatus.OK]
        probs = _few_out_of_sample_probs(ports, model_version, usable)
        # A facet the whole review found no predictions for has no thresholds: skipped.
        facets = [f for f in facets if f in stored]
        thresholds = {f: np.array([np.inf if v is None else v for v in stored[f]]) for f in facets}
    else:
        usable = [r for r in ports.labels.scan() if r.status == ImageStatus.OK]  # one scan
        probs = _out_of_sample_probs(ports, model_version, usable)
        thresholds = {}
    busy = {
        (image_id, t.facet)
        for s in ("open", "escalated")
        for t in ports.tasks.list(s)
        for image_id in (t.image_id, *t.siblings)
    }
    wanted = set(image_ids) if image_ids is not None else None
    labelled = {r.image_id for r in usable if any(r.facets.get(f) for f in facets)}
    if wanted is not None:
        labelled &= wanted
    review = Review(
        model_version=model_version,
        suspects=[],
        labelled=len(labelled),
        without_predictions=sum(1 for i in labelled if i not in probs),
    )
    computed = {}
    for name in facets:
        labels = taxonomy.labels(name)
        rows = [
            r
            for r in sorted(usable, key=lambda r: r.image_id)
            if r.facets.get(name) is not None
            and r.facets[name] in labels
            and len(probs.get(r.image_id, {}).get(name, ())) == len(labels)
        ]
        if not rows:
            continue
        given = np.array([taxonomy.index(name, r.facets[name]) for r in rows])
        matrix = np.array([probs[r.image_id][name] for r in rows], dtype=np.float64)
        if name not in thresholds:
            thresholds[name] = computed[name] = per_class_thresholds(given, matrix)
        reviewable = np.array(
            [
                r.sources.get(name, LabelSource.CATALOG) == LabelSource.CATALOG
                and (r.image_id, name) not in busy
                and (wanted is None or r.image_id in wanted)
                for r in rows
            ]
        )
        groups = product_groups(rows, given) if by_product else [[i] for i in range(len(rows))]
        # A product's photos are judged together: their probabilities averaged (views of one
        # dress), reviewable only when every photo's label is still the catalog's.
        firsts = [group[0] for group in groups]
        for s in rank_suspicious(
            given[firsts],
            np.stack([matrix[group].mean(axis=0) for group in groups]),
            reviewable=np.array([bool(reviewable[group].all()) for group in groups]),
            thresholds=thresholds[name],
            flag_by=REVIEW_FILTER,
            doubt=ports.settings.review_doubt,
        ):
            group = groups[s.index]
            # Shown to people: the photo in which the model doubts the label most.
            shown = group[int(np.argmin(matrix[group, s.given]))]
            review.suspects.append(
                SuspiciousLabel(
                    image_id=rows[shown].image_id,
                    facet=name,
                    label=labels[s.given],
                    suggested=labels[s.suggested],
                    confidence=s.confidence,
                    margin=s.margin,
                    self_confidence=s.self_confidence,
                    score=s.score,
                    siblings=tuple(rows[i].image_id for i in group if i != shown),
                )
            )
    if computed and store_thresholds:
        _store_thresholds(ports, model_version, computed)
    review.suspects.sort(key=lambda s: (s.score, s.image_id, s.facet))
    if budget_tasks is not None:
        review.suspects = review.suspects[:budget_tasks]
    return review


def product_groups(rows: list[LabelRecord], given: np.ndarray) -> list[list[int]]:
    """Row indices grouped by (product, given label), each group in row order, the groups in
    the order of their first row. A product's photos carry its facets; photos of one product
    with different labels (people corrected one) stay apart."""
    groups: dict[tuple[str, int], list[int]] = {}
    for index, (record, label) in enumerate(zip(rows, given.tolist(), strict=True)):
        groups.setdefault((record.product_id, label), []).append(index)
    return list(groups.values())


def find_suspicious(
    ports: Ports, model_version: str, *, facet: str | None = None, limit: int | None = None
) -> list[SuspiciousLabel]:
    """Labels the model confidently disagrees with, the likeliest mistakes first
    (`review_labels` over the whole catalog)."""
    return review_labels(ports, model_version, facet=facet, budget_tasks=limit).suspects


def tasks_within_budget(workforce: Workforce, usd: Decimal, *, assignments: int) -> int:
    """How many tasks of `assignments` answers `usd` buys from this workforce."""
    price = workforce.task_price_usd(assignments)
    if price is None or price <= 0:
        raise ConfigurationError(
            f"the {workforce.name} workforce sets no price per task: give the budget in tasks "
            "(--budget-tasks) instead of money"
        )
    return int(usd // price)


def image_url(ports: Ports, workforce: Workforce, record: LabelRecord) -> str:
    """Where workers' browsers fetch the photo: A2I signs s3:// URIs itself; when the web app's
    base URL is configured, a signed link to it valid for the task's whole lifetime (it
    redirects to a fresh presigned URL each time); else a presigned URL (file:// locally),
    which expires with the credentials that signed it."""
    if workforce.name == "a2i":
        return f"s3://{ports.catalog.name}/{record.object_key}"
    if ports.settings.web_base_url:
        expires_at = time.time() + TASK_LINK_LIFETIME_S
        return image_link(ports.settings, record.image_id, expires_at)
    return ports.catalog.url(record.object_key, expires_s=7 * 24 * 3600)


@dataclass
class PublishSummary:
    created: int = 0  # tasks stored (each one published)
    published: int = 0
    skipped: int = 0  # already published (a re-run)
    budget_exhausted: bool = False
    task_ids: list[str] = field(default_factory=list)


def _still_labelled(ports: Ports, image_id: str, suspect: SuspiciousLabel) -> bool:
    record = ports.labels.get(image_id)
    return record is not None and record.facets.get(suspect.facet) == suspect.label


def publish_tasks(
    ports: Ports, workforce: Workforce, suspects: list[SuspiciousLabel], *, max_assignments: int
) -> PublishSummary:
    """Create and publish one task per suspicious label (with its product's other photos that
    still carry the label: the answer is theirs too); idempotent, stops at the budget."""
    summary = PublishSummary()
    for suspect in suspects:
        record = ports.labels.get(suspect.image_id)
        if record is None or record.facets.get(suspect.facet) != suspect.label:
            continue  # the label changed since the ranking: nothing to ask
        task = RelabelTask.new(
            image_id=record.image_id,
            facet=suspect.facet,
            round=record.version,
            allowed=ports.taxonomy.labels(suspect.facet),
            current_label=suspect.label,
            label_version=record.version,
            suggested=suspect.suggested,
            confidence=suspect.confidence,
            provider=workforce.name,  # type: ignore[arg-type]
            max_assignments=max_assignments,
            siblings=[i for i in suspect.siblings if _still_labelled(ports, i, suspect)],
        )
        if ports.tasks.get(task.task_id) is not None:
            summary.skipped += 1
            continue
        # Publish first, then store: the providers make publishing idempotent (MTurk's
        # UniqueRequestToken and A2I's loop name derive from the task id), so a crash between
        # the two steps republishes harmlessly, and a task in the store was surely published.
        try:
            external_id = workforce.publish(task, image_url(ports, workforce, record))
        except BudgetExceededError as exc:
            logger.warning("stopped publishing: %s", exc)
            summary.budget_exhausted = True
            break
        if ports.tasks.create(task.model_copy(update={"external_id": external_id})):
            summary.created += 1
        summary.published += 1
        summary.task_ids.append(task.task_id)
    return summary


@dataclass
class CollectSummary:
    decided: int = 0
    changed: int = 0  # decided with a label other than the current one
    confirmed: int = 0  # decided with the current label
    asked_more: int = 0
    escalated: int = 0
    conflicts: int = 0
    waiting: int = 0
    votes: int = 0
    siblings_changed: int = 0  # labels of the decided tasks' other product photos changed
    failed: int = 0  # tasks whose answers could not be read or decided (noted on the task)
    closed: int = 0  # tasks whose facet or labels left the taxonomy
    answers_received: int = 0  # new answers fetched by this pass
    train_job: str | None = None

    def to_json(self) -> dict:
        return dict(self.__dict__)


def _refresh_votes(ports: Ports, workforce: Workforce, task: RelabelTask) -> RelabelTask:
    votes = tuple(workforce.fetch_votes(task))
    known = {v.assignment_id for v in task.votes}
    if all(v.assignment_id in known for v in votes) and len(votes) == len(task.votes):
        return task
    merged = {v.assignment_id: v for v in (*task.votes, *votes)}
    return ports.tasks.update(
        task.model_copy(update={"votes": tuple(merged.values())}), task.version
    )


def left_taxonomy(ports: Ports, task: RelabelTask) -> str | None:
    """Why `task` can no longer be answered under the current taxonomy, or None."""
    taxonomy = ports.taxonomy
    if task.facet not in taxonomy.facet_names:
        return f"facet {task.facet!r} is no longer in the taxonomy"
    gone = [label for label in task.allowed if label not in taxonomy.labels(task.facet)]
    if gone:
        return f"{task.facet} label(s) {', '.join(gone)} are no longer in the taxonomy"
    return None


def past_deadline(ports: Ports, task: RelabelTask, now: datetime | None = None) -> bool:
    deadline = timedelta(hours=ports.settings.task_deadline_hours)
    return (now or datetime.now(UTC)) - task.created_at > deadline


def _note(ports: Ports, task: RelabelTask, note: str, **changes) -> RelabelTask | None:
    """Store `note` (and `changes`) on the task as it is now; None if that write fails too
    (the next pass tries again: nothing is lost)."""
    for _ in range(UPDATE_ATTEMPTS):
        current = ports.tasks.get(task.task_id) or task
        if current.status != task.status:
            return current  # decided meanwhile by someone else
        try:
            return ports.tasks.update(
                current.model_copy(update={"note": note[:1000], **changes}), current.version
            )
        except ConflictError:
            continue
        except Exception:
            logger.exception(
                "task %s: could not record %r", task.task_id, note, extra=_ids(task.task_id)
            )
            return None
    return None


def _fail(ports: Ports, task: RelabelTask, exc: BaseException, summary: CollectSummary) -> None:
    logger.warning(
        "task %s failed in this collect pass: %r", task.task_id, exc, extra=_ids(task.task_id)
    )
    summary.failed += 1
    current = ports.tasks.get(task.task_id) or task
    _note(
        ports,
        current,
        f"collect failed: {type(exc).__name__}: {exc}",
        failures=current.failures + 1,
    )


def _close_or_escalate(
    ports: Ports, workforce: Workforce, task: RelabelTask, status: str, note: str
) -> None:
    """Stop asking (pay for what was answered, expire the HIT), then close or escalate."""
    try:
        workforce.finish(task)
    except Exception as exc:  # the note says so; staff can still answer
        note = f"{note} (stopping it at {task.provider} failed: {exc})"
    _note(ports, task, note, status=status)


# The model's suggestion as an answer of its own, for Dawid-Skene: a pseudo-worker whose
# confusion matrix (how often the model is right when it suggests each label, learned from the
# people's answers on every task) weighs its vote, as a classifier's output is the prior of the
# true label in Raykar et al., "Learning from crowds" (JMLR 2010). A task still needs two people
# who agree (`AggregationConfig.min_agreeing`); the witness settles a split between them sooner
# and lends weight where the model has been right before. Never a worker in the workers table.
MODEL_WITNESS = "dressvision:model"


def _vote_triples(
    tasks: list[RelabelTask], ports: Ports, *, model_witness: bool = False
) -> dict[str, list[tuple]]:
    """facet -> [(task_id, worker_id, label index)], one vote per worker and task (the latest:
    a worker who answered twice through a redelivery counts once); with `model_witness`, each
    task's suggestion as the vote of `MODEL_WITNESS`."""
    per_facet: dict[str, dict[tuple[str, str], tuple]] = defaultdict(dict)
    for task in tasks:
        if model_witness and task.votes:
            index = ports.taxonomy.index(task.facet, task.suggested)
            per_facet[task.facet][(task.task_id, MODEL_WITNESS)] = (
                task.task_id,
                MODEL_WITNESS,
                index,
            )
        for vote in sorted(task.votes, key=lambda v: v.at):
            index = ports.taxonomy.index(task.facet, vote.label)
            per_facet[task.facet][(task.task_id, vote.worker_id)] = (
                task.task_id,
                vote.worker_id,
                index,
            )
    return {facet: list(votes.values()) for facet, votes in per_facet.items()}


def _apply_outcome(
    ports: Ports,
    task: RelabelTask,
    label: str,
    evidence: dict,
    source: LabelSource = LabelSource.CROWD,
) -> str:
    """Set the label unless people changed it since the task was published.
    Returns "changed", "confirmed" or "conflict"."""
    for _ in range(UPDATE_ATTEMPTS):
        record = ports.labels.get(task.image_id)
        if record is None:
            raise NotFoundError(f"image {task.image_id} of task {task.task_id} is gone")
        current = record.facets.get(task.facet)
        if current != task.current_label:
            logger.warning(
                "task %s: %s changed from %s to %s since publishing; keeping it",
                task.task_id,
                task.facet,
                task.current_label,
                current,
                extra=_ids(task.task_id),
            )
            return "conflict"
        if not _update_unless_moved(ports, record, task.facet, label, source, evidence):
            continue  # another facet of the image moved on: re-read, check again
        return "changed" if label != current else "confirmed"
    raise ConflictError(f"task {task.task_id}: the label kept changing; collect again later")


def _update_unless_moved(
    ports: Ports,
    record: LabelRecord,
    facet: str,
    label: str | None,
    source: LabelSource,
    evidence: dict,
) -> bool:
    """Set one label of `record` as read; False when the record moved on since (re-read it)."""
    try:
        ports.labels.update_label(
            record.image_id,
            facet,
            label,
            source=source,
            expected_version=record.version,
            evidence=evidence,
        )
    except ConflictError:
        return False
    return True


def _apply_to_siblings(
    ports: Ports,
    task: RelabelTask,
    label: str,
    evidence: dict,
    source: LabelSource = LabelSource.CROWD,
) -> int:
    """The decision of `task` on the product's other photos (`task.siblings`), see
    `apply_to_photos`. Returns how many labels changed."""
    evidence = {**evidence, "product_photo": task.image_id}
    old = task.current_label
    return apply_to_photos(
        ports, task.siblings, task.facet, old, label, source=source, evidence=evidence
    )


def apply_to_photos(
    ports: Ports,
    image_ids: Iterable[str],
    facet: str,
    old: str | None,
    label: str | None,
    *,
    source: LabelSource,
    evidence: dict,
) -> int:
    """People's answer about one photo of a product on its other photos: each one whose label
    is still `old` and still the catalog's gets `label` (changed or confirmed by people); a
    photo people labelled since keeps theirs. Returns how many labels changed."""
    changed = 0
    for image_id in image_ids:
        for _ in range(UPDATE_ATTEMPTS):
            record = ports.labels.get(image_id)
            if (
                record is None
                or record.facets.get(facet) != old
                or record.sources.get(facet, LabelSource.CATALOG) != LabelSource.CATALOG
            ):
                logger.info("%s of %s changed since it was asked about: kept", facet, image_id)
                break
            if not _update_unless_moved(ports, record, facet, label, source, evidence):
                continue  # another facet of the photo moved on: re-read, check again
            changed += label != old
            break
    return changed


def collect(
    ports: Ports, workforce: Workforce, *, config: AggregationConfig | None = None
) -> CollectSummary:
    """Fetch answers of the open tasks this workforce published, aggregate, decide, update
    labels; then maybe retrain. One task's failure is recorded on it and never stops the
    pass (see the module docstring)."""
    settings = ports.settings
    config = config or AggregationConfig(
        ask_step=settings.ask_step,
        max_assignments=max(9, settings.max_assignments),
    )
    summary = CollectSummary()
    open_tasks = []
    for task in ports.tasks.list("open"):
        if task.provider != workforce.name:
            continue
        stale = left_taxonomy(ports, task)
        if stale:
            _close_or_escalate(ports, workforce, task, "closed", f"closed: {stale}")
            summary.closed += 1
            continue
        try:
            refreshed = _refresh_votes(ports, workforce, task)
        except Exception as exc:
            _fail(ports, task, exc, summary)
            if past_deadline(ports, task):
                _escalate_late(ports, workforce, task, summary)
            continue
        summary.answers_received += len(refreshed.votes) - len(task.votes)
        open_tasks.append(refreshed)
    # Reliability is estimated across every answered task of the facet, decided ones included.
    answered = {t.task_id: t for t in ports.tasks.list() if t.votes and not left_taxonomy(ports, t)}
    answered.update({t.task_id: t for t in open_tasks if t.votes})
    results = {}
    per_facet = []
    triples = _vote_triples(list(answered.values()), ports, model_witness=config.model_witness)
    for facet, votes in triples.items():
        k = len(ports.taxonomy.labels(facet))
        per_facet.append(dawid_skene(votes, k, config=config))
        results.update(per_facet[-1].tasks)
    record_workers(ports, workforce, list(answered.values()), per_facet)

    for task in open_tasks:
        try:
            _decide(ports, workforce, task, results, config, summary)
        except Exception as exc:
            _fail(ports, task, exc, summary)
    summary.train_job = maybe_retrain(ports)
    return summary


def record_workers(
    ports: Ports, workforce: Workforce, tasks: list[RelabelTask], per_facet: list
) -> list[WorkerRecord]:
    """Keep what Dawid-Skene estimated about each worker (shown by `dressvision workers`), and
    keep this workforce's workers below DRESSVISION_MIN_WORKER_ACCURACY out of new tasks where
    the provider can enforce it (MTurk); elsewhere they are reported as excluded."""
    if not per_facet:
        return []
    provider_of = {v.worker_id: t.provider for t in tasks for v in t.votes}
    summaries = summarize_workers(per_facet)
    summaries.pop(MODEL_WITNESS, None)  # the model is not a worker to pay, judge or exclude
    threshold = ports.settings.min_worker_accuracy
    now = datetime.now(UTC)
    records = [
        WorkerRecord(
            provider=provider_of[worker_id],
            worker_id=str(worker_id),
            answers=s.answers,
            accuracy=s.accuracy,
            spammer_score=s.spammer_score,
            likely_spammer=s.likely_spammer,
            excluded=threshold > 0 and s.below(threshold),
            updated_at=now,
        )
        for worker_id, s in summaries.items()
    ]
    before = {w.worker_id: w.excluded for w in ports.tasks.workers(workforce.name)}
    ports.tasks.put_workers(records)
    excluded = [  # newly excluded: a provider's exclusion is kept, once is enough
        r.worker_id
        for r in records
        if r.excluded and r.provider == workforce.name and not before.get(r.worker_id)
    ]
    if excluded and not workforce.exclude_workers(excluded):
        logger.warning(
            "%d %s workers are below the accuracy threshold %.2f but the provider cannot keep "
            "them out: see `dressvision workers`",
            len(excluded),
            workforce.name,
            threshold,
        )
    return records


def _escalate_late(
    ports: Ports, workforce: Workforce, task: RelabelTask, summary: CollectSummary
) -> None:
    hours = ports.settings.task_deadline_hours
    note = (
        f"escalated: no decision {hours:g} hours after publishing (the deadline, "
        f"DRESSVISION_TASK_DEADLINE_HOURS); {len(task.votes)} answer(s) so far"
    )
    _close_or_escalate(ports, workforce, task, "escalated", note)
    summary.escalated += 1


def _decide(
    ports: Ports,
    workforce: Workforce,
    task: RelabelTask,
    results: dict,
    config: AggregationConfig,
    summary: CollectSummary,
) -> None:
    summary.votes += len(task.votes)
    record = ports.labels.get(task.image_id)
    if record is None or record.facets.get(task.facet) != task.current_label:
        # People changed the label since publishing: theirs stands; stop paying for answers.
        workforce.finish(task)
        ports.tasks.update(task.model_copy(update={"status": "conflict"}), task.version)
        summary.conflicts += 1
        return
    if not task.votes:
        if past_deadline(ports, task):
            _escalate_late(ports, workforce, task, summary)
        else:
            summary.waiting += 1
        return
    labels = ports.taxonomy.labels(task.facet)
    posterior = results[task.task_id].posterior
    votes = [ports.taxonomy.index(task.facet, v.label) for v in task.votes]
    decision = decide(posterior, votes, assigned=task.max_assignments, config=config)
    if decision.outcome == Outcome.DECIDED:
        label = labels[decision.label]
        evidence = {
            "task_id": task.task_id,
            "provider": task.provider,
            "posterior": round(decision.confidence, 4),
            "votes": [{"worker": v.worker_id, "label": v.label} for v in task.votes],
        }
        if config.model_witness:  # the posterior weighed the model's suggestion too
            evidence["model_witness"] = task.suggested
        result = _apply_outcome(ports, task, label, evidence)
        if result != "conflict":
            summary.siblings_changed += _apply_to_siblings(ports, task, label, evidence)
        workforce.finish(task)
        status = "conflict" if result == "conflict" else "decided"
        ports.tasks.update(
            task.model_copy(
                update={
                    "status": status,
                    "outcome": label,
                    "outcome_posterior": decision.confidence,
                }
            ),
            task.version,
        )
        logger.info(
            "task %s: %s of %s %s (%s -> %s, posterior %.3f, %d answers)",
            task.task_id,
            task.facet,
            task.image_id,
            result,
            task.current_label,
            label,
            decision.confidence,
            len(task.votes),
            extra={**_ids(task.task_id), "image_id": task.image_id},
        )
        summary.decided += result != "conflict"
        summary.conflicts += result == "conflict"
        summary.changed += result == "changed"
        summary.confirmed += result == "confirmed"
    elif past_deadline(ports, task):  # undecided past the deadline: staff decide
        _escalate_late(ports, workforce, task, summary)
    elif decision.outcome == Outcome.ASK_MORE:
        workforce.request_more(task, decision.ask)
        ports.tasks.update(
            task.model_copy(update={"max_assignments": task.max_assignments + decision.ask}),
            task.version,
        )
        summary.asked_more += 1
    elif decision.outcome == Outcome.ESCALATE:
        workforce.finish(task)
        ports.tasks.update(task.model_copy(update={"status": "escalated"}), task.version)
        summary.escalated += 1
    else:
        summary.waiting += 1


def answer_as_staff(
    ports: Ports,
    task_id: str,
    label: str,
    *,
    who: str = "staff",
    workforce: Workforce | None = None,
) -> str:
    """A staff member's answer decides the task (staff are the reference). Returns the result:
    "changed", "confirmed" or "conflict".

    A task published to a provider (an MTurk HIT, A2I loops) is then finished there with
    `workforce` (the task's provider): answers given so far are paid and the HIT expires, so
    workers stop answering a decided question. Without it the task's external work stays
    open: a warning says so."""
    task = ports.tasks.get(task_id)
    if task is None:
        raise NotFoundError(f"no task {task_id!r}; see `dressvision tasks list`")
    if task.status not in ("open", "escalated"):
        raise ConflictError(f"task {task_id} is {task.status}; only open or escalated tasks")
    label = ports.taxonomy.validate(task.facet, label) or ""
    vote = Vote(worker_id=who, label=label, assignment_id=f"staff-{len(task.votes) + 1}")
    evidence = {
        "task_id": task_id,
        "provider": "staff",
        "who": who,
        "votes": [{"worker": v.worker_id, "label": v.label} for v in task.votes],
    }
    result = _apply_outcome(ports, task, label, evidence, source=LabelSource.STAFF)
    if result != "conflict":
        _apply_to_siblings(ports, task, label, evidence, source=LabelSource.STAFF)
    ports.tasks.update(
        task.model_copy(
            update={
                "votes": (*task.votes, vote),
                "status": "conflict" if result == "conflict" else "decided",
                "outcome": label,
                "outcome_posterior": 1.0,
            }
        ),
        task.version,
    )
    if task.external_id:
        if workforce is not None and workforce.name == task.provider:
            workforce.finish(task)
        else:
            logger.warning(
                "task %s is decided, but its %s work %s is still open: finish it with the %s "
                "workforce",
                task_id,
                task.provider,
                task.external_id,
                task.provider,
                extra=_ids(task_id),
            )
    return result


def _last_training_start(ports: Ports) -> datetime | None:
    """The newest labels snapshot (every training starts with one) or training request."""
    stamps = [
        stamp
        for key in ports.artifacts.list(SNAPSHOT_PREFIX)
        if (stamp := parse_stamp(snapshot_id_of(key))) is not None
    ]
    try:
        request = json.loads(ports.artifacts.get(TRAIN_REQUEST_KEY).body)
        stamps.append(datetime.fromisoformat(request["at"]))
    except NotFoundError:
        pass
    return max(stamps) if stamps else None


def loop_converged(ports: Ports) -> str | None:
    """Why the relabel loop stops here, or None to run another round: the round that led to
    the current training changed fewer labels than DRESSVISION_LOOP_MIN_CHANGES. Before any
    retraining by the loop (a first training), a round always runs."""
    try:
        request = json.loads(ports.artifacts.get(TRAIN_REQUEST_KEY).body)
    except NotFoundError:
        return None
    changed, minimum = int(request.get("changed", 0)), ports.settings.loop_min_changes
    if changed >= minimum:
        return None
    return f"converged: the last round changed {changed} labels (< {minimum}, {LOOP_MIN_CHANGES})"


def manifest_image_ids(ports: Ports, manifest_key: str) -> list[str]:
    """The images of an inference manifest (JSON lines of `ManifestEntry`)."""
    body = ports.artifacts.get(manifest_key).body.decode()
    return [ManifestEntry.model_validate_json(line).image_id for line in body.splitlines() if line]


def changes_since_last_training(ports: Ports) -> int:
    """Labels changed by decided tasks since the last training: a task's photo and the
    product's other photos its decision set."""
    since = _last_training_start(ports)
    return sum(
        1 + len(t.siblings)
        for t in ports.tasks.list("decided")
        if t.outcome != t.current_label and (since is None or t.updated_at > since)
    )


def next_holdout_fold(ports: Ports) -> int | None:
    """The fold of train products the loop's next retraining leaves out: the one after the
    last request's, so that every fold is judged out of sample in turn (None when
    DRESSVISION_LOOP_HOLDOUT_FOLDS is 0)."""
    folds = ports.settings.loop_holdout_folds
    if not folds:
        return None
    try:
        last = json.loads(ports.artifacts.get(TRAIN_REQUEST_KEY).body).get("holdout_fold")
    except NotFoundError:
        last = None
    return 0 if last is None else (int(last) + 1) % folds


def maybe_retrain(ports: Ports) -> str | None:
    """Submit the training job when at least `retrain_threshold` labels changed since the last
    training (or training request). Returns the job id, or None. The job carries the
    deployment's whole recipe (`training_request`): the locator when none is current,
    the training dynamics the next review judges with, the configured image and batch sizes,
    and the next fold to hold out (`next_holdout_fold`)."""
    changed = changes_since_last_training(ports)
    if changed < ports.settings.retrain_threshold:
        return None
    fold = next_holdout_fold(ports)
    job_id = ports.jobs.submit(training_request(ports, holdout_fold=fold))
    record = {"at": datetime.now(UTC).isoformat(), "job_id": job_id, "changed": changed}
    if fold is not None:
        record["holdout_fold"] = fold
    ports.artifacts.put(
        TRAIN_REQUEST_KEY, json.dumps(record).encode(), content_type="application/json"
    )
    logger.info("%d labels changed since the last training: submitted %s", changed, job_id)
    return job_id
