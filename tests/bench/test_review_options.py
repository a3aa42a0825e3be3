"""bench/review_options.py: a flipped product is one task covering its photos; doubt asks about
a label its model barely backs. Hand-made probabilities; nothing is trained."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from bench.review_options import score


def test_products_make_one_task_and_doubt_widens_the_net():
    rows = [
        SimpleNamespace(image_id=f"p{i // 2}/{i % 2}", product_id=f"p{i // 2}") for i in range(8)
    ]
    given = np.array([0, 0, 1, 1, 0, 0, 0, 0])
    true = np.array([1, 1, 1, 1, 1, 1, 0, 0])  # p0 and p2 are flipped to class 0
    probs = np.array(
        [
            [0.2, 0.8],  # p0: the model disagrees on both photos
            [0.3, 0.7],
            [0.1, 0.9],  # p1: right, and the model agrees
            [0.1, 0.9],
            [0.6, 0.4],  # p2: the model keeps the wrong label, barely (half memorised)
            [0.55, 0.45],
            [0.95, 0.05],  # p3: right, and sure of it
            [0.95, 0.05],
        ]
    )
    per_facet = [(rows, given, true, probs)]
    photo = score(per_facet, by_product=False, doubt=0.0)
    product = score(per_facet, by_product=True, doubt=0.0)
    assert (photo["tasks"], photo["labels"]) == (2, 2)  # p0's two photos, two tasks
    assert (product["tasks"], product["labels"], product["wrong_labels_covered"]) == (1, 2, 2)
    assert product["recall"] == 0.5 and product["precision"] == 1.0
    # Class 0's mean probability over its labels: (0.2 + 0.3 + 0.6 + 0.55 + 0.95 + 0.95) / 6
    # = 0.592; p2's mean 0.575 is under 1.0 x that, not under 0.9 x that.
    assert score(per_facet, by_product=True, doubt=0.9) == product
    doubting = score(per_facet, by_product=True, doubt=1.0)
    assert (doubting["tasks"], doubting["recall"], doubting["precision"]) == (2, 1.0, 1.0)
