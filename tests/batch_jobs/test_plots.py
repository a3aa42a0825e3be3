"""`evaluate --plot`: a PNG confusion matrix per facet and split, and the training curves."""

from __future__ import annotations

import numpy as np

from batch_jobs.facets.metrics import split_report
from batch_jobs.plots import training_curves, write_plots

PNG = b"\x89PNG\r\n\x1a\n"
LABELS = {"sleeve": ["short", "long", "none"], "neckline": ["v", "round"]}


def document() -> dict:
    rng = np.random.default_rng(0)
    facets = list(LABELS)
    splits = {}
    for split, n in (("train", 12), ("test", 6)):
        probs = {f: rng.random((n, len(LABELS[f]))) for f in facets}
        targets = np.stack([rng.integers(-1, len(LABELS[f]), n) for f in facets], axis=1)
        splits[split] = split_report(probs, targets, facets, LABELS)
    return {"version": "v1", "splits": splits}


HISTORY = [
    {"epoch": e, "loss": 2.0 / e, "test_loss": 2.2 / e, "test_macro_f1": {"sleeve": 0.1 * e}}
    for e in (1, 2, 3)
]


def test_one_png_per_facet_and_split_and_the_curves(tmp_path):
    written = write_plots(document(), HISTORY, tmp_path / "plots")
    names = sorted(p.name for p in written)
    assert names == [
        "confusion_test_neckline.png",
        "confusion_test_sleeve.png",
        "confusion_train_neckline.png",
        "confusion_train_sleeve.png",
        "training_curves.png",
    ]
    for path in written:
        assert path.read_bytes().startswith(PNG) and path.stat().st_size > 1000


def test_a_model_without_history_gets_no_curves_and_an_old_history_still_plots(tmp_path):
    assert training_curves([], tmp_path) is None
    old = [{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5}]  # before per-epoch tests
    assert training_curves(old, tmp_path).read_bytes().startswith(PNG)
