"""bench/holdout_judge.py's scoring: the held-out share is stable, and a judge is scored by
how well the probability of each label tells the wrong ones. Hand-made figures."""

from __future__ import annotations

import pytest

from bench.holdout_judge import held_out, score

CLASSES = {"sleeve": ["long", "short", "cap"]}


def test_the_held_out_share_is_stable_and_about_its_size():
    products = [f"p{i:04d}" for i in range(2000)]
    chosen = [p for p in products if held_out(p, 0.25)]
    assert chosen == [p for p in products if held_out(p, 0.25)]  # the same every run
    assert len(chosen) / len(products) == pytest.approx(0.25, abs=0.03)
    assert set(chosen) <= {p for p in products if held_out(p, 0.5)}  # a larger share adds


def test_a_judge_is_scored_against_the_true_labels():
    truth = {i: {"sleeve": "long"} for i in "abcd"}
    labels = {
        "a": {"sleeve": "short"},  # wrong, and the judge sees it
        "b": {"sleeve": "cap"},  # wrong, and the judge believes it
        "c": {"sleeve": "long"},  # right, the judge hesitates
        "d": {"sleeve": "long"},  # right, the judge agrees
        "e": {"sleeve": None},  # unknown: not judged
    }
    judge = {
        "a": {"sleeve": [0.8, 0.1, 0.1]},
        "b": {"sleeve": [0.3, 0.1, 0.6]},
        "c": {"sleeve": [0.4, 0.5, 0.1]},
        "d": {"sleeve": [0.9, 0.05, 0.05]},
    }
    result = score(labels, judge, {**truth, "e": {"sleeve": "long"}}, CLASSES)
    # ranked by the label's own probability: a 0.1, c 0.4, b 0.6, d 0.9; K = 2 wrong
    assert (result["judged"], result["k"], result["precision_at_k"]) == (4, 2, 0.5)
    # a (wrong) and c (right) are flagged: their most probable class is another one
    assert (result["flagged"], result["flagged_precision"], result["flagged_recall"]) == (
        2,
        0.5,
        0.5,
    )
