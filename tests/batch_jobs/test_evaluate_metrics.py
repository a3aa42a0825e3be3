"""Evaluation figures: scikit-learn's F1 on a known case, and the documented JSON shape."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from batch_jobs.evaluate import metrics_document, summary
from batch_jobs.facets.metrics import facet_report
from shared.records import LabelRecord
from shared.taxonomy import Taxonomy

LABELS = ("a-line", "sheath", "shift")


def test_f1_equals_scikit_learn_on_a_known_case():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    report = facet_report(y_true, y_pred, LABELS)
    # By hand: a-line P 1 R 2/3 -> F1 0.8; sheath P 1/2 R 1/2 -> 0.5; shift P 1/2 R 1 -> 2/3.
    assert report["per_class"]["a-line"]["f1"] == pytest.approx(0.8)
    assert report["per_class"]["sheath"]["f1"] == pytest.approx(0.5)
    assert report["per_class"]["shift"]["f1"] == pytest.approx(2 / 3)
    assert report["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert report["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["per_class"]["a-line"]["support"] == 3
    assert report["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_a_class_absent_from_labels_and_predictions_is_reported_with_zeros():
    report = facet_report(np.array([0, 1]), np.array([0, 1]), LABELS)
    assert report["macro_f1"] == 1.0  # scikit-learn's macro over the classes that occur
    assert report["per_class"]["shift"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 0,
    }


def test_document_has_the_shape_of_the_issue_and_counts_only_known_labels():
    taxonomy = Taxonomy({"silhouette": LABELS, "sleeve": ("cap", "long")})
    records = [
        LabelRecord(
            image_id=f"p{i}/x",
            product_id=f"p{i}",
            object_key=f"catalog/p{i}/x.jpg",
            split=split,
            facets={"silhouette": sil, "sleeve": slv},
        )
        for i, (split, sil, slv) in enumerate(
            [
                ("train", "a-line", "cap"),
                ("train", "sheath", None),
                ("test", "shift", "long"),
                ("test", None, "cap"),
            ]
        )
    ]
    probs = {"silhouette": np.eye(3)[[0, 1, 2, 0]], "sleeve": np.eye(2)[[0, 0, 1, 0]]}
    doc = metrics_document("v1", probs, records, taxonomy)
    assert set(doc) == {"version", "splits"} and doc["version"] == "v1"
    assert set(doc["splits"]) == {"train", "test"}
    test_sleeve = doc["splits"]["test"]["sleeve"]
    assert set(test_sleeve) == {"macro_f1", "accuracy", "per_class", "confusion"}
    assert set(test_sleeve["per_class"]["cap"]) == {"precision", "recall", "f1", "support"}
    assert test_sleeve["accuracy"] == 1.0
    assert sum(c["support"] for c in doc["splits"]["test"]["silhouette"]["per_class"].values()) == 1
    assert sum(doc["splits"]["train"]["sleeve"]["confusion"][0]) == 1  # the None row left out
    assert summary(doc) == {"train_macro_f1": 1.0, "test_macro_f1": 1.0}
