"""Vote aggregation: Dawid-Skene with per-worker reliability, majority vote, and the decision rule.

Runs in Lambdas, so numpy and the stdlib only. Aggregation runs per facet: every task in one call
shares the facet's K classes, and a vote is `(task_id, worker_id, label_index)` with the label
index in the taxonomy's order (answers are validated against the allowed labels before they get
here).

Dawid & Skene (1979), "Maximum likelihood estimation of observer error-rates using the EM
algorithm": each worker w has a confusion matrix pi[w] (K, K), rows = true class, columns = the
answer; EM alternates between the class posteriors of every task and the workers' matrices, so a
careful worker's vote counts more than a spammer's. We add Dirichlet (Laplace) pseudo-counts to the
M-step, which makes it a MAP estimate: a worker seen once is not "perfect", and a worker who never
saw a true class answers it uniformly at random until shown otherwise.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

Vote = tuple[Hashable, Hashable, int]  # (task_id, worker_id, label_index)


@dataclass(frozen=True)
class AggregationConfig:
    """The thresholds of the human-in-the-loop policy and the EM settings.

    - threshold: a task is decided when its top posterior reaches this.
    - min_agreeing: ... and at least this many answers name the top label (one confident worker
      is never enough on its own, whatever the model of workers says).
    - initial_assignments: how many workers a new task starts with.
    - ask_step: how many more workers to ask when a task is not decided yet (one at a time buys
      the fewest answers; more at a time decides sooner when answers are slow to come).
    - max_assignments: the budget cap per task; reached without a decision -> escalate to staff.
    - model_witness: the model's suggestion counts as one more answer of a pseudo-worker whose
      confusion matrix is estimated like everybody's (see `shared.relabel.MODEL_WITNESS`); it
      never counts towards `min_agreeing`, which only people's answers reach.
    - smoothing: Dirichlet pseudo-count added to every confusion-matrix cell and class prior.
    - tol, max_iter: EM stops when no posterior moves more than `tol`, or after `max_iter` rounds.
    """

    threshold: float = 0.9
    min_agreeing: int = 2
    initial_assignments: int = 2
    ask_step: int = 1
    max_assignments: int = 9
    model_witness: bool = True
    smoothing: float = 1.0
    tol: float = 1e-5
    max_iter: int = 500

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}; e.g. use 0.9")
        if self.min_agreeing < 1:
            raise ValueError(f"min_agreeing must be at least 1, got {self.min_agreeing}")
        if self.ask_step < 1:
            raise ValueError(f"ask_step must be at least 1, got {self.ask_step}")
        if not self.min_agreeing <= self.initial_assignments <= self.max_assignments:
            raise ValueError(
                "need min_agreeing <= initial_assignments <= max_assignments, got "
                f"{self.min_agreeing}, {self.initial_assignments}, {self.max_assignments}; "
                "raise max_assignments or lower the others"
            )
        if not self.smoothing > 0.0:
            raise ValueError(
                f"smoothing must be > 0 (e.g. 1.0, Laplace), got {self.smoothing}; with 0 a "
                "worker seen once would be estimated perfect"
            )
        if not self.tol > 0.0:
            raise ValueError(f"tol must be > 0, got {self.tol}; e.g. use 1e-5")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be at least 1, got {self.max_iter}")


DEFAULT_CONFIG = AggregationConfig()


@dataclass(frozen=True)
class TaskResult:
    """What the answers say about one task. posterior: (K,), sums to 1."""

    task_id: Hashable
    posterior: np.ndarray
    label: int  # argmax of the posterior, lowest index on ties
    confidence: float  # posterior[label]
    num_votes: int


@dataclass(frozen=True)
class WorkerQuality:
    """One worker's estimated reliability.

    confusion: (K, K), row j = P(answer | true class j), each row sums to 1.
    accuracy: P(correct answer) on a task drawn from the class priors, sum_j prior_j pi[j, j];
    a uniform spammer or one who always gives the same answer scores about 1/K.
    """

    worker_id: Hashable
    confusion: np.ndarray
    accuracy: float
    num_votes: int


@dataclass(frozen=True)
class AggregationResult:
    tasks: dict[Hashable, TaskResult]  # in order of first appearance in the votes
    workers: dict[Hashable, WorkerQuality]
    class_priors: np.ndarray  # (K,)
    iterations: int
    converged: bool


@dataclass(frozen=True)
class _Encoded:
    task_ids: list[Hashable]
    worker_ids: list[Hashable]
    task: np.ndarray  # (V,) task position of each vote
    worker: np.ndarray  # (V,) worker position of each vote
    label: np.ndarray  # (V,) label index of each vote


def _positions(keys: Iterable[Hashable]) -> tuple[list[Hashable], np.ndarray]:
    index: dict[Hashable, int] = {}
    positions = [index.setdefault(key, len(index)) for key in keys]
    return list(index), np.asarray(positions, dtype=np.int64)


def _encode(votes: Sequence[Vote], num_classes: int) -> _Encoded:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer):
        raise ValueError(f"num_classes must be an int, got {num_classes!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2 (the facet's classes), got {num_classes}")
    if len(votes) == 0:
        raise ValueError("no votes to aggregate: pass at least one (task_id, worker_id, label)")
    if any(len(vote) != 3 for vote in votes):
        raise ValueError("each vote must be a (task_id, worker_id, label_index) triple")
    task_ids, task = _positions(vote[0] for vote in votes)
    worker_ids, worker = _positions(vote[1] for vote in votes)
    labels = [vote[2] for vote in votes]
    if not all(isinstance(x, int | np.integer) and not isinstance(x, bool) for x in labels):
        raise ValueError("label_index must be an int: map answers to the taxonomy's index first")
    label = np.asarray(labels, dtype=np.int64)
    bad = (label < 0) | (label >= num_classes)
    if bad.any():
        raise ValueError(
            f"label index {int(label[bad][0])} is outside [0, {num_classes}); validate answers "
            "against the facet's allowed labels before aggregating"
        )
    pairs = task * len(worker_ids) + worker
    if np.unique(pairs).size != pairs.size:
        raise ValueError(
            "a worker voted twice on the same task; deduplicate by (task_id, worker_id) first "
            "(keep the latest answer): SQS may deliver an answer more than once"
        )
    return _Encoded(task_ids, worker_ids, task, worker, label)


def _vote_counts(enc: _Encoded, num_classes: int) -> np.ndarray:
    """(T, K) number of votes for each class on each task."""
    flat = enc.task * num_classes + enc.label
    return np.bincount(flat, minlength=len(enc.task_ids) * num_classes).reshape(-1, num_classes)


def _task_results(
    enc: _Encoded, posteriors: np.ndarray, counts: np.ndarray
) -> dict[Hashable, TaskResult]:
    labels = posteriors.argmax(axis=1)  # numpy's argmax takes the lowest index on ties
    return {
        task_id: TaskResult(
            task_id=task_id,
            posterior=posteriors[i],
            label=int(labels[i]),
            confidence=float(posteriors[i, labels[i]]),
            num_votes=int(counts[i].sum()),
        )
        for i, task_id in enumerate(enc.task_ids)
    }


def majority_vote(votes: Sequence[Vote], num_classes: int) -> dict[Hashable, TaskResult]:
    """The baseline: each task gets its most voted label, the lowest class index on a tie.

    The posterior reported is the vote share (T tasks, each (K,)), so the results read the same
    way as `dawid_skene`'s.
    """
    enc = _encode(votes, num_classes)
    counts = _vote_counts(enc, num_classes)
    shares = counts / counts.sum(axis=1, keepdims=True)
    return _task_results(enc, shares, counts)


def _m_step(
    enc: _Encoded, posteriors: np.ndarray, num_classes: int, smoothing: float
) -> tuple[np.ndarray, np.ndarray]:
    """Class priors (K,) and confusion matrices (W, K, K) from the task posteriors (T, K)."""
    k = num_classes
    priors = posteriors.sum(axis=0) + smoothing
    priors /= priors.sum()
    # counts[w, j, l] = sum over w's votes l on tasks t of posteriors[t, j]: one bincount over
    # the flattened (worker, true class, answer) cell of every (vote, true class) pair.
    cells = (enc.worker[:, None] * k + np.arange(k)[None, :]) * k + enc.label[:, None]
    counts = np.bincount(
        cells.ravel(), weights=posteriors[enc.task].ravel(), minlength=len(enc.worker_ids) * k * k
    ).reshape(-1, k, k)
    counts += smoothing
    return priors, counts / counts.sum(axis=2, keepdims=True)


def _e_step(enc: _Encoded, priors: np.ndarray, confusion: np.ndarray, num_tasks: int) -> np.ndarray:
    """Task posteriors (T, K), computed in log space so many votes cannot underflow."""
    vote_log_lik = np.log(confusion[enc.worker, :, enc.label])  # (V, K)
    log_post = np.tile(np.log(priors), (num_tasks, 1))
    np.add.at(log_post, enc.task, vote_log_lik)
    log_post -= log_post.max(axis=1, keepdims=True)
    post = np.exp(log_post)
    return post / post.sum(axis=1, keepdims=True)


def dawid_skene(
    votes: Sequence[Vote], num_classes: int, *, config: AggregationConfig = DEFAULT_CONFIG
) -> AggregationResult:
    """Aggregate the votes of one facet with Dawid-Skene EM; deterministic for a given input.

    votes: V triples `(task_id, worker_id, label_index)`, at most one per (task, worker).
    Starts from the soft majority vote (each task's vote shares), then alternates M-step (class
    priors and confusion matrices, both smoothed by `config.smoothing`) and E-step (posteriors).
    Returns per task the posterior (K,), its argmax and top probability; per worker the
    confusion matrix (K, K) and accuracy.
    """
    enc = _encode(votes, num_classes)
    counts = _vote_counts(enc, num_classes)
    posteriors = counts / counts.sum(axis=1, keepdims=True)
    converged, iterations = False, 0
    while iterations < config.max_iter and not converged:
        iterations += 1
        priors, confusion = _m_step(enc, posteriors, num_classes, config.smoothing)
        updated = _e_step(enc, priors, confusion, len(enc.task_ids))
        converged = bool(np.abs(updated - posteriors).max() < config.tol)
        posteriors = updated

    votes_per_worker = np.bincount(enc.worker, minlength=len(enc.worker_ids))
    accuracy = np.einsum("j,wjj->w", priors, confusion)
    workers = {
        worker_id: WorkerQuality(
            worker_id=worker_id,
            confusion=confusion[w],
            accuracy=float(accuracy[w]),
            num_votes=int(votes_per_worker[w]),
        )
        for w, worker_id in enumerate(enc.worker_ids)
    }
    return AggregationResult(
        tasks=_task_results(enc, posteriors, counts),
        workers=workers,
        class_priors=priors,
        iterations=iterations,
        converged=converged,
    )


def votes_by_task(votes: Iterable[Vote]) -> dict[Hashable, list[int]]:
    """The label indices answered on each task, in vote order (what `decide` takes)."""
    grouped: dict[Hashable, list[int]] = {}
    for task_id, _worker_id, label in votes:
        grouped.setdefault(task_id, []).append(int(label))
    return grouped


class Outcome(StrEnum):
    DECIDED = "decided"  # update the label
    ASK_MORE = "ask_more"  # publish `Decision.ask` more assignments
    WAIT = "wait"  # assignments are still out; decide again when they answer
    ESCALATE = "escalate"  # the budget cap is reached undecided: a staff member decides


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    label: int  # the top posterior label (the new label when DECIDED)
    confidence: float  # its posterior
    agreeing: int  # answers naming `label`
    ask: int  # assignments to publish now (> 0 only for ASK_MORE)
    reason: str  # for people and the label event's evidence


def _check_posterior(posterior: np.ndarray) -> np.ndarray:
    posterior = np.asarray(posterior, dtype=np.float64)
    if posterior.ndim != 1 or posterior.size < 2:
        raise ValueError(f"posterior must be a (K,) vector with K >= 2, got {posterior.shape}")
    if not np.isfinite(posterior).all() or (posterior < 0).any():
        raise ValueError("posterior must hold finite, non-negative probabilities")
    if abs(posterior.sum() - 1.0) > 1e-6:
        raise ValueError(f"posterior must sum to 1, got {posterior.sum():.6f}; normalize it first")
    return posterior


def decide(
    posterior: np.ndarray,
    votes: Sequence[int],
    *,
    assigned: int | None = None,
    config: AggregationConfig = DEFAULT_CONFIG,
) -> Decision:
    """Apply the policy to one task.

    posterior: (K,) from `dawid_skene` for this task; votes: the label index of each answer
    received; assigned: assignments published so far (answered or not), defaults to len(votes).
    DECIDED when posterior[top] >= threshold and at least `min_agreeing` answers name top.
    Otherwise WAIT while answers are outstanding (so every answer does not buy more), ESCALATE
    once `max_assignments` are in, else ASK_MORE for `ask_step` more, capped at the budget.
    """
    posterior = _check_posterior(posterior)
    assigned = len(votes) if assigned is None else assigned
    if assigned < len(votes):
        raise ValueError(f"assigned ({assigned}) cannot be less than the answers ({len(votes)})")
    if any(not 0 <= v < posterior.size for v in votes):
        raise ValueError(f"votes must be label indices in [0, {posterior.size})")
    label = int(posterior.argmax())
    confidence = float(posterior[label])
    agreeing = sum(1 for v in votes if v == label)

    def decision(outcome: Outcome, ask: int, reason: str) -> Decision:
        return Decision(outcome, label, confidence, agreeing, ask, reason)

    if confidence >= config.threshold and agreeing >= config.min_agreeing:
        return decision(Outcome.DECIDED, 0, f"posterior {confidence:.3f}, {agreeing} agree")
    why = (
        f"posterior {confidence:.3f} < {config.threshold}"
        if confidence < config.threshold
        else f"only {agreeing} of {len(votes)} answers agree, need {config.min_agreeing}"
    )
    if len(votes) < assigned:
        return decision(Outcome.WAIT, 0, f"{why}; {assigned - len(votes)} answers outstanding")
    if assigned >= config.max_assignments:
        return decision(Outcome.ESCALATE, 0, f"{why} after {assigned} answers (the cap)")
    ask = min(config.ask_step, config.max_assignments - assigned)
    return decision(Outcome.ASK_MORE, ask, f"{why}; asking {ask} more")


# --- Worker quality: what Dawid-Skene learned about each worker, kept and judged -------------

ANSWERS_PER_CLASS_TO_JUDGE = 5  # a facet's estimate counts once a worker gave 5 x K answers
SPAMMER_SCORE_LIMIT = 0.3  # below this, a worker's answers hardly depend on the true class


def spammer_score(confusion: np.ndarray) -> float:
    """How much a worker's answers depend on the true class, in [0, 1] (after Raykar & Yu,
    "Eliminating spammers and ranking annotators for crowdsourced labeling tasks", JMLR 2012).

    A spammer answers the same way whatever the truth (at random, or always one label): every
    row of the confusion matrix is the same, so the mean total-variation distance between rows
    is 0. A perfect worker (or one who consistently swaps two labels) scores 1. Unlike accuracy,
    this tells a careless worker apart from a systematically confused one.
    """
    k = confusion.shape[0]
    distances = np.abs(confusion[:, None, :] - confusion[None, :, :]).sum(axis=2) / 2.0
    return float(distances.sum() / (k * (k - 1)))


@dataclass(frozen=True)
class WorkerSummary:
    """One worker across the facets they answered.

    accuracy: vote-weighted over every facet (what to show). judged_accuracy and
    spammer_score: over the facets where the worker gave at least ANSWERS_PER_CLASS_TO_JUDGE x K
    answers, None before that: with a few answers the Dirichlet smoothing dominates the estimate,
    and a new worker must not be judged on it.
    """

    worker_id: Hashable
    answers: int
    accuracy: float
    judged_accuracy: float | None
    spammer_score: float | None

    @property
    def likely_spammer(self) -> bool:
        return self.spammer_score is not None and self.spammer_score < SPAMMER_SCORE_LIMIT

    def below(self, min_accuracy: float) -> bool:
        """Whether to keep this worker out of new tasks (never on too few answers)."""
        return self.judged_accuracy is not None and self.judged_accuracy < min_accuracy


def summarize_workers(results: Iterable[AggregationResult]) -> dict[Hashable, WorkerSummary]:
    """Combine the per-facet `dawid_skene` results (one per facet) into one summary per worker."""
    sums: dict[Hashable, list[float]] = {}  # answers, accuracy x n, judged n, acc x n, score x n
    for result in results:
        k = result.class_priors.size
        for worker_id, quality in result.workers.items():
            row = sums.setdefault(worker_id, [0, 0.0, 0, 0.0, 0.0])
            n = quality.num_votes
            row[0] += n
            row[1] += quality.accuracy * n
            if n >= ANSWERS_PER_CLASS_TO_JUDGE * k:
                row[2] += n
                row[3] += quality.accuracy * n
                row[4] += spammer_score(quality.confusion) * n
    return {
        worker_id: WorkerSummary(
            worker_id=worker_id,
            answers=int(answers),
            accuracy=total / answers,
            judged_accuracy=judged_total / judged if judged else None,
            spammer_score=score_total / judged if judged else None,
        )
        for worker_id, (answers, total, judged, judged_total, score_total) in sums.items()
    }
