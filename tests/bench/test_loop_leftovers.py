"""bench/loop_leftovers.py: the labels a loop left wrong, grouped by split and facet, with what
the judge said about each (the model for a test image, its training dynamics for a train
image). Hand-made labels and predictions; nothing is trained."""

from __future__ import annotations

import pytest

from bench.loop_leftovers import leftovers
from shared.records import FacetPrediction, LabelRecord, LabelSource, PredictionRecord
from shared.relabel import oof_version


def record(image_id: str, split: str, sleeve: str) -> LabelRecord:
    return LabelRecord(
        image_id=image_id,
        product_id=image_id,
        object_key=f"catalog/{image_id}.jpg",
        split=split,
        facets={"sleeve": sleeve},
    )


def prediction(image_id: str, version: str, probs: list[float], labels) -> PredictionRecord:
    best = max(range(len(probs)), key=probs.__getitem__)
    sleeve = FacetPrediction(label=labels[best], prob=probs[best], probs=probs)
    return PredictionRecord(image_id=image_id, model_version=version, facets={"sleeve": sleeve})


def test_each_wrong_label_is_counted_with_what_its_judge_said(tiny_ports, tmp_path):
    ports = tiny_ports(tmp_path / "home")
    labels = ports.taxonomy.labels("sleeve")  # sleeveless, cap, short, three-quarter, long
    uniform = [0.2] * len(labels)
    for image_id, split, label in [
        ("learned", "train", "long"),  # wrong, and the dynamics lean to it
        ("caught", "train", "long"),  # wrong, the dynamics lean to the truth
        ("unjudged", "train", "long"),  # wrong, no dynamics
        ("right", "train", "cap"),  # right: not counted
        ("test", "test", "short"),  # wrong, set by people, judged by the model
    ]:
        ports.labels.register(record(image_id, split, label))
    ports.labels.update_label(  # people confirmed the wrong label
        "test",
        "sleeve",
        "short",
        source=LabelSource.CROWD,
        expected_version=ports.labels.get("test").version,
    )
    truth = {i: {"sleeve": "three-quarter"} for i in ("learned", "caught", "unjudged", "test")}
    truth["right"] = {"sleeve": "cap"}
    dynamics = oof_version("v1")
    ports.predictions.put_many(
        [
            prediction("learned", dynamics, [0.0, 0.0, 0.1, 0.3, 0.6], labels),
            prediction("caught", dynamics, [0.0, 0.0, 0.1, 0.7, 0.2], labels),
            prediction("right", dynamics, uniform, labels),
            prediction("test", "v1", [0.0, 0.0, 0.1, 0.9, 0.0], labels),
            prediction("learned", "v1", uniform, labels),  # the model's own: not the judge
        ]
    )

    report = leftovers(ports, "v1", truth)

    assert report["model"] == "v1"
    train = report["groups"]["train/sleeve"]
    assert (train["left"], train["judged"], train["favours_wrong"]) == (3, 2, 1)
    assert train["set_by"] == {"catalog": 3}
    assert train["p_wrong_label"] == pytest.approx([0.2, 0.6])
    assert train["p_true_label"] == pytest.approx([0.3, 0.7])
    test = report["groups"]["test/sleeve"]
    assert (test["left"], test["judged"], test["favours_wrong"]) == (1, 1, 0)
    assert test["set_by"] == {"crowd": 1}
