"""Suspicious labels: where the model confidently disagrees with the catalog (confident learning).

Northcutt, Jiang & Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels" (JAIR
2021). Per facet, class j's threshold t_j is the model's mean self-confidence p(j | x) over the
examples labelled j. An example's "confident" class is the most probable class among those whose
probability reaches their own threshold (the confident joint's rule); the example is suspicious
when that class exists and is not its given label. This is cleanlab's
`find_label_issues(filter_by="confident_learning")`, without its calibration step
(tests/shared/test_suspicious.py checks the flagged set against cleanlab itself).

The order: the flagged set sorted by self-confidence p(given | x), lowest first (cleanlab's
`rank_by_self_confidence`), which puts real flips ahead of the margin order. To spend one
budget across facets with different numbers of classes, the self-confidence is divided by the
given class's threshold (`Suspect.score`): "how far below what this model usually gives a
right label of this class", comparable across facets.

The probabilities must not have learned the labels they judge: out-of-sample ones (the test
split, cross-validated folds), or training dynamics taken before the network memorised
(batch_jobs/dynamics.py). A model's final probabilities on its own training labels score them
as right, which hides exactly the errors we look for. The caller guarantees this.

numpy and the stdlib only: this runs in a Lambda.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

UNKNOWN = -1  # the given label index of an image whose label is unknown: ignored
# A probability equal to its threshold passes even when the mean was rounded a little above it.
_THRESHOLD_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Suspect:
    """One label the model confidently disagrees with.

    confidence: the model's probability of the suggested label, p(suggested | x), in [0, 1]:
    what people read ("the model says sheath at 0.93"). margin: p(suggested) - p(given).
    self_confidence: p(given | x). score: self_confidence / t_given, what the ranking sorts
    on (ascending: the likeliest mistakes first, comparable across facets).
    """

    index: int  # row in the input arrays
    item_id: Hashable | None  # ids[index] when ids were given
    given: int
    suggested: int
    confidence: float
    margin: float
    self_confidence: float = 0.0
    score: float = 0.0


def _check_inputs(given: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    given = np.asarray(given)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(f"probs must be (N, K) with K >= 2 classes, got shape {probs.shape}")
    if given.shape != (probs.shape[0],):
        raise ValueError(
            f"given must be (N,) = ({probs.shape[0]},) to match probs, got shape {given.shape}"
        )
    if given.size and not np.issubdtype(given.dtype, np.integer):
        raise ValueError("given must hold integer label indices (-1 for unknown)")
    k = probs.shape[1]
    if ((given < UNKNOWN) | (given >= k)).any():
        raise ValueError(f"given label indices must be in [0, {k}) or -1 for unknown")
    if not np.isfinite(probs).all() or (probs < 0).any() or (probs > 1).any():
        raise ValueError("probs must be probabilities in [0, 1]: apply softmax to logits first")
    if probs.size and not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("each row of probs must sum to 1: apply softmax to logits first")
    return given.astype(np.int64), probs


def per_class_thresholds(given: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """t_j = mean of probs[i, j] over the examples with given[i] == j; (K,).

    given: (N,) int, -1 = unknown (ignored); probs: (N, K) out-of-sample probabilities.
    A class nobody is labelled with gets +inf: we do not know what "confident" means for it, so
    it is never suggested.
    """
    given, probs = _check_inputs(given, probs)
    k = probs.shape[1]
    known = given != UNKNOWN
    counts = np.bincount(given[known], minlength=k)
    sums = np.bincount(given[known], weights=probs[known, given[known]], minlength=k)
    thresholds = np.full(k, np.inf)
    np.divide(sums, counts, out=thresholds, where=counts > 0)
    return thresholds


ORDERS = ("self_confidence", "margin")
# Which labels are flagged (cleanlab's `find_label_issues(filter_by=...)` names):
# - "confident_learning": the confident joint's off-diagonal (another class reaches its own
#   threshold and wins), for probabilities of models that never saw the label;
# - "predicted_neq_given": the model's most probable class is not the given label. What review
#   uses on training dynamics (batch_jobs/dynamics.py): their probabilities are soft (a mean over
#   epochs), so another class rarely reaches its threshold, while the argmax already disagrees
#   with half the wrong labels (bench/results/judge_options.json).
FILTERS = ("confident_learning", "predicted_neq_given")


def rank_suspicious(
    given: np.ndarray,
    probs: np.ndarray,
    *,
    ids: Sequence[Hashable] | None = None,
    limit: int | None = None,
    reviewable: np.ndarray | None = None,
    thresholds: np.ndarray | None = None,
    order_by: str = "self_confidence",
    flag_by: str = "confident_learning",
    doubt: float = 0.0,
) -> list[Suspect]:
    """The suspicious labels of one facet, the likeliest mistakes first.

    given: (N,) int label indices, -1 = unknown (skipped); probs: (N, K) OUT-OF-SAMPLE predicted
    probabilities; ids: optional (N,) ids copied into `Suspect.item_id`; limit: keep the top ones.
    reviewable: optional (N,) bool: rows that may be flagged (the others, e.g. labels people
    already confirmed, still count in the thresholds). thresholds: (K,) per-class thresholds
    computed earlier on the whole distribution (`per_class_thresholds`), for ranking a few new
    rows without reading everything again; default: computed from these rows.
    order_by: "self_confidence" (default: `Suspect.score` ascending) or "margin" (descending,
    the former order); ties keep input order. flag_by: one of FILTERS (which labels are
    flagged at all). doubt: also flag a label whose score (self-confidence over its class's
    threshold) is below `doubt`, though the filter keeps it: the model gives it less than
    `doubt` times what it usually gives a label of that class (0: the filter alone). Such a
    row's suggestion is its most probable class, often the label itself: the model doubts it
    without backing another (what the model witness then says in `collect`).
    """
    given, probs = _check_inputs(given, probs)
    if ids is not None and len(ids) != len(given):
        raise ValueError(f"ids must have one entry per row of probs ({len(given)}), got {len(ids)}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None for all, got {limit}")
    if order_by not in ORDERS:
        raise ValueError(f"order_by must be one of {', '.join(ORDERS)}, got {order_by!r}")
    if flag_by not in FILTERS:
        raise ValueError(f"flag_by must be one of {', '.join(FILTERS)}, got {flag_by!r}")
    if not 0.0 <= doubt <= 1.0:
        raise ValueError(f"doubt must be a share between 0 and 1, got {doubt}")
    if thresholds is None:
        thresholds = per_class_thresholds(given, probs)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.shape != (probs.shape[1],):
        raise ValueError(f"thresholds must be ({probs.shape[1]},), got {thresholds.shape}")
    rows = np.arange(len(given))
    if flag_by == "confident_learning":
        passing = probs >= thresholds - _THRESHOLD_TOLERANCE
        confident_class = np.where(passing, probs, -1.0).argmax(axis=1)
        flagged = (given != UNKNOWN) & passing.any(axis=1) & (confident_class != given)
    else:
        confident_class = probs.argmax(axis=1)
        flagged = (given != UNKNOWN) & (confident_class != given)
    if doubt > 0.0:
        g = np.where(given == UNKNOWN, 0, given)
        threshold = thresholds[g]
        judged = (given != UNKNOWN) & np.isfinite(threshold) & (threshold > 0)
        doubted = judged & ~flagged & (probs[rows, g] < doubt * threshold)
        confident_class = np.where(doubted, probs.argmax(axis=1), confident_class)
        flagged |= doubted
    if reviewable is not None:
        flagged &= np.asarray(reviewable, dtype=bool)
    index = rows[flagged]
    suggested = confident_class[flagged]
    confidence = probs[index, suggested]
    self_confidence = probs[index, given[flagged]]
    margin = confidence - self_confidence
    given_threshold = thresholds[given[flagged]]
    score = np.divide(
        self_confidence,
        given_threshold,
        out=np.zeros_like(self_confidence),
        where=np.isfinite(given_threshold) & (given_threshold > 0),
    )
    key = score if order_by == "self_confidence" else -margin
    order = np.argsort(key, kind="stable")[:limit]
    return [
        Suspect(
            index=int(index[o]),
            item_id=None if ids is None else ids[int(index[o])],
            given=int(given[index[o]]),
            suggested=int(suggested[o]),
            confidence=float(confidence[o]),
            margin=float(margin[o]),
            self_confidence=float(self_confidence[o]),
            score=float(score[o]),
        )
        for o in order
    ]


def precision_recall(
    flagged: Iterable[Hashable], true_flipped: Iterable[Hashable]
) -> tuple[float, float]:
    """Precision and recall of the flagged items against the known flipped ones (sets).

    For the loop benchmark with injected flips. As scikit-learn's default (zero_division=0):
    precision is 0.0 when nothing is flagged, recall 0.0 when nothing was flipped.
    """
    flagged_set, flipped_set = set(flagged), set(true_flipped)
    hits = len(flagged_set & flipped_set)
    precision = hits / len(flagged_set) if flagged_set else 0.0
    recall = hits / len(flipped_set) if flipped_set else 0.0
    return precision, recall
