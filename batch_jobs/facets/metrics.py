"""Evaluation figures with scikit-learn: per facet and class precision, recall, F1 and support,
macro F1, accuracy and the confusion matrix (rows: true class, columns: predicted; classes in
the taxonomy's order). Only images whose label of a facet is known count for that facet.

Macro F1 is scikit-learn's `f1_score(average="macro")`: the unweighted mean over the classes
that occur in the labels or the predictions (a class absent from both, e.g. from a small test
split, neither helps nor hurts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from batch_jobs.facets.loss import UNKNOWN


def facet_report(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict:
    """The figures of one facet: `{"macro_f1", "accuracy", "per_class", "confusion"}`."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    indices = list(range(len(labels)))
    if len(y_true) == 0:
        zero = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
        return {
            "macro_f1": 0.0,
            "accuracy": 0.0,
            "per_class": {label: dict(zero) for label in labels},
            "confusion": [[0] * len(labels) for _ in labels],
        }
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=indices, zero_division=0
    )
    return {
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion": confusion_matrix(y_true, y_pred, labels=indices).tolist(),
    }


def split_report(
    probs: Mapping[str, np.ndarray],
    targets: np.ndarray,
    facets: Sequence[str],
    labels: Mapping[str, Sequence[str]],
) -> dict[str, dict]:
    """`{facet: facet_report}` for one split; `targets` is (N, F) with -1 for unknown."""
    report = {}
    for column, facet in enumerate(facets):
        known = targets[:, column] != UNKNOWN
        predicted = probs[facet].argmax(axis=1) if len(probs[facet]) else np.zeros(0, int)
        report[facet] = facet_report(targets[known, column], predicted[known], labels[facet])
    return report


def mean_macro_f1(split: Mapping[str, dict]) -> float:
    """The mean of the facets' macro F1 (the registry's promotion metric)."""
    values = [facet["macro_f1"] for facet in split.values()]
    return float(np.mean(values)) if values else 0.0
