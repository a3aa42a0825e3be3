"""bench/judge_options.py's scoring: a window of captured epochs averaged per image, and the
ranking and filters scored against known wrong labels. Hand-made figures; nothing is trained."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.judge_options import judge, window_probs
from shared.taxonomy import Taxonomy

TAXONOMY = Taxonomy({"sleeve": ["long", "short"]})


def test_a_window_averages_the_epochs_each_image_was_seen_in(tmp_path):
    nan = [np.nan, np.nan]
    epochs = [
        [[0.9, 0.1], [0.2, 0.8]],
        [[0.5, 0.5], nan],  # image b missed this epoch (a drop_last batch)
        [[0.1, 0.9], [0.4, 0.6]],
    ]
    np.savez(
        tmp_path / "per_epoch.npz", **{f"sleeve_{e}": np.array(p) for e, p in enumerate(epochs)}
    )
    (tmp_path / "rows.json").write_text(json.dumps({"version": "v1", "rows": ["a", "b"]}))
    version, probs = window_probs(tmp_path, 1, 3)
    assert version == "v1"
    assert probs["sleeve"]["a"] == pytest.approx([0.3, 0.7])
    assert probs["sleeve"]["b"] == pytest.approx([0.4, 0.6])  # epoch 2 only


def test_judge_scores_the_ranking_and_each_filter_against_the_wrong_labels():
    given = {"a": "long", "b": "long", "c": "short", "d": "short", "e": "long"}
    wrong = {"b", "d"}  # b and d are mislabelled
    train = {
        "sleeve": {
            "a": np.array([0.9, 0.1]),
            "b": np.array([0.2, 0.8]),  # disagrees: a hit
            "c": np.array([0.1, 0.9]),
            "d": np.array([0.55, 0.45]),  # leans to the truth
        }
    }
    test = {"sleeve": {"e": np.array([0.4, 0.6])}}  # right label, but the model disagrees

    result = judge(train, test, lambda i, f: given.get(i), lambda i, f: i in wrong, TAXONOMY)

    assert result["k"] == 2
    assert result["precision_at_k"] == 1.0  # b and d have the lowest self-confidence
    neq = result["flagged"]["predicted_neq_given"]
    assert (neq["count"], neq["precision"], neq["recall"]) == (
        3,
        pytest.approx(2 / 3, abs=1e-4),
        1.0,
    )
    assert result["per_facet"]["sleeve"] == {"k": 2, "precision_at_k": 1.0}
    assert neq["precision_of_the_first"] == {}  # 3 flags: no budget of 50 or more is full
