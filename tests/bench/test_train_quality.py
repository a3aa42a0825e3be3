"""bench/train_quality.py's summary of several trained catalogs: the worst confusions read from
the stored confusion matrices, the mean and the minimum over seeds, and the misses in words.
Pure functions on hand-made figures; nothing is trained."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from batch_jobs.facets.metrics import facet_report
from bench.train_quality import (
    across_seeds,
    misses,
    progress_line,
    seed_report,
    worst_pairs,
)

SLEEVES = ["long", "three-quarter", "short", "cap"]
# long: 10 images, three-quarter: 5, short: 8, cap: 4
SLEEVE_MATRIX = [
    [7, 3, 0, 0],  # long -> three-quarter 3 (30%)
    [3, 2, 0, 0],  # three-quarter -> long 3 (60%): same count, larger share, so first
    [0, 0, 7, 1],  # short -> cap 1
    [0, 0, 2, 2],  # cap -> short 2
]


def seed(number, f1, seconds, sleeve_matrix=SLEEVE_MATRIX):
    """A seed's figures as `seed_report` writes them (the fields the summary reads)."""
    return {
        "seed": number,
        "test_macro_f1": {
            "neckline": {"train": 1.0, "test": f1[0]},
            "sleeve": {"train": 1.0, "test": f1[1]},
        },
        "seconds": {"whole_command": seconds},
        "confusion_test": {"neckline": [[5, 0], [0, 5]], "sleeve": sleeve_matrix},
    }


CLASSES = {"neckline": ["v-neck", "crew"], "sleeve": SLEEVES}


def test_worst_pairs_are_the_largest_off_diagonal_cells_with_the_share_of_the_true_class():
    pairs = worst_pairs(SLEEVE_MATRIX, SLEEVES, top=3)
    assert pairs == [
        {"true": "three-quarter", "predicted": "long", "count": 3, "share": 0.6},
        {"true": "long", "predicted": "three-quarter", "count": 3, "share": 0.3},
        {"true": "cap", "predicted": "short", "count": 2, "share": 0.5},
    ]
    assert worst_pairs([[5, 0], [0, 5]], ["v-neck", "crew"], top=2) == []  # no confusion
    # Same count and share: the true class's taxonomy order decides (a stable report).
    tied = worst_pairs([[1, 0, 1], [1, 1, 0], [0, 0, 1]], ["a", "b", "c"], top=2)
    assert [(pair["true"], pair["predicted"]) for pair in tied] == [("a", "c"), ("b", "a")]


def test_worst_pairs_read_the_matrix_as_the_evaluation_stores_it():
    """Rows are the true class: 2 `short` photos tagged `cap` is short -> cap, not the reverse."""
    y_true = np.array([2, 2, 2, 3, 0])
    y_pred = np.array([3, 3, 2, 3, 0])
    report = facet_report(y_true, y_pred, SLEEVES)
    assert worst_pairs(report["confusion"], list(report["per_class"]), top=2) == [
        {"true": "short", "predicted": "cap", "count": 2, "share": 0.667}
    ]


def test_across_seeds_gives_the_mean_the_minimum_and_the_seed_of_the_minimum():
    seeds = [
        seed(0, (0.95, 0.93), 600.0),
        seed(7, (0.97, 0.81), 700.5),
        seed(1, (0.90, 0.89), 650.0),
    ]
    summary = across_seeds(seeds, CLASSES)
    assert summary["seeds"] == [0, 7, 1]
    assert summary["test_macro_f1"]["neckline"] == {"mean": 0.94, "min": 0.9, "min_seed": 1}
    assert summary["test_macro_f1"]["sleeve"] == {"mean": 0.8767, "min": 0.81, "min_seed": 7}
    assert summary["whole_command_s"] == {"mean": 650.2, "max": 700.5, "max_seed": 7}


def test_across_seeds_sums_the_confusions_before_ranking_them():
    # Seed 1 alone: short -> cap is its worst (4); summed, long -> three-quarter (3 + 3) leads.
    other = [[7, 3, 0, 0], [0, 5, 0, 0], [0, 0, 4, 4], [0, 0, 0, 4]]
    seeds = [seed(0, (0.95, 0.93), 600.0), seed(1, (0.95, 0.93), 600.0, other)]
    worst = across_seeds(seeds, CLASSES)["worst_confusions_test"]
    assert worst["neckline"] == []
    assert worst["sleeve"] == [
        {"true": "long", "predicted": "three-quarter", "count": 6, "share": 0.3},
        {"true": "short", "predicted": "cap", "count": 5, "share": 0.312},
        {"true": "three-quarter", "predicted": "long", "count": 3, "share": 0.3},
    ]


def test_misses_say_each_missed_target_in_words_and_nothing_when_all_are_met():
    seeds = [
        seed(0, (0.92, 0.95), 900.0),  # exactly on both targets: met
        seed(7, (0.93, 0.818), 612.0),
        seed(1, (0.91996, 0.95), 900.1),
    ]
    assert misses(seeds) == [
        "seed 7 sleeve 0.818 < 0.92",
        "seed 1 neckline 0.919 < 0.92",  # rounded down: never "0.920 < 0.92"
        "seed 1 whole command 900.1 s > 900 s",
    ]
    assert misses(seeds[:1]) == []


def test_a_seed_report_reads_the_training_result():
    sleeve = facet_report(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), SLEEVES)
    split = {"sleeve": sleeve}
    result = SimpleNamespace(
        version="v1",
        promoted=True,
        metrics={
            "splits": {"train": split, "test": split},
            "test_macro_f1": sleeve["macro_f1"],
            "images": {"train": 3, "evaluated": 4},
            "without_crop": None,
        },
        locator={"version": "l1", "promoted": True, "mean_iou": 0.86},
        skipped=[],
        seconds={
            "snapshot": 30.0,
            "prepare": 2.0,
            "train": 500.0,
            "evaluate": 8.0,
            "save": 2.0,
            "out_of_fold": 200.0,
            "total": 742.0,
        },
    )
    report = seed_report(7, result, 781.26)
    assert report["seconds"]["whole_command"] == 781.3
    assert report["seconds"]["facet_model"] == 512.0  # not the snapshot nor out-of-fold models
    assert report["worst_confusions_test"]["sleeve"] == [
        {"true": "long", "predicted": "three-quarter", "count": 1, "share": 0.5}
    ]
    assert report["test_macro_f1"]["sleeve"]["test"] == sleeve["macro_f1"]
    assert report["locator"]["mean_iou"] == 0.86
    line = progress_line(report)
    assert (
        line == f"seed 7: test macro F1 sleeve {sleeve['macro_f1']:.3f}; 781 s (facet model 512 s)"
    )
