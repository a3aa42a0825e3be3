"""The semi-hard triplet loss against a hand-written loop over every triplet, and the
retrieval metrics against counts done by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional

from batch_jobs.similarity.evaluate import retrieval_metrics
from batch_jobs.similarity.loss import SemiHardTripletLoss
from batch_jobs.similarity.train import product_batches


def loop_loss(embeddings: torch.Tensor, labels: list[int], margin: float) -> float:
    """FaceNet's semi-hard rule written plainly: for every (anchor, positive), the closest
    negative farther than the positive, else the farthest negative; hinge; mean."""
    n = len(labels)
    triplet = torch.nn.TripletMarginLoss(margin=margin, p=2, reduction="none", eps=0.0)
    losses = []
    for a in range(n):
        for p in range(n):
            if p == a or labels[p] != labels[a]:
                continue
            negatives = [j for j in range(n) if labels[j] != labels[a]]
            if not negatives:
                continue
            d_ap = float(torch.dist(embeddings[a], embeddings[p]))
            dists = {j: float(torch.dist(embeddings[a], embeddings[j])) for j in negatives}
            farther = [j for j in negatives if dists[j] > d_ap]
            neg = min(farther, key=dists.get) if farther else max(negatives, key=dists.get)
            losses.append(
                float(
                    triplet(embeddings[a : a + 1], embeddings[p : p + 1], embeddings[neg : neg + 1])
                )
            )
    return sum(losses) / len(losses)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_semi_hard_loss_equals_the_hand_written_loop(seed: int) -> None:
    torch.manual_seed(seed)
    labels = [0, 0, 0, 1, 1, 2, 2, 2, 3]  # product 3 has one photo: anchor of nothing
    embeddings = functional.normalize(torch.randn(len(labels), 6), dim=1)

    got = SemiHardTripletLoss(margin=0.3)(embeddings, torch.tensor(labels))

    assert float(got) == pytest.approx(loop_loss(embeddings, labels, 0.3), abs=1e-5)


def test_loss_is_zero_when_products_are_apart_and_has_gradients_otherwise() -> None:
    far = torch.tensor([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 1])
    assert float(SemiHardTripletLoss(0.2)(far, labels)) == pytest.approx(0.0, abs=1e-3)

    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.0, 1.0]], requires_grad=True)
    loss = SemiHardTripletLoss(0.2)(mixed, labels)
    loss.backward()
    assert float(loss.detach()) > 0.1 and mixed.grad.abs().sum() > 0


def test_a_batch_without_triplets_gives_zero() -> None:
    x = torch.randn(3, 4, requires_grad=True)
    assert float(SemiHardTripletLoss()(x, torch.tensor([0, 1, 2])).detach()) == 0.0
    assert float(SemiHardTripletLoss()(x, torch.tensor([0, 0, 0])).detach()) == 0.0


def test_retrieval_metrics_by_hand() -> None:
    # Products a (rows 0, 1), b (2, 3), c (4: alone, not a query).
    e = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.8, 0.2], [0.95, 0.05]], dtype=np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)

    m = retrieval_metrics(e, ["a", "a", "b", "b", "c"])

    # Row 0 ranks 4, 1, 3, 2: hit at 2. Row 1 ranks 4, 0: hit at 2. Row 2 ranks 3 first: hit
    # at 1. Row 3 ranks 1, 4, 0, 2: hit at 4.
    assert m["queries"] == 4
    assert m["recall_at_1"] == pytest.approx(1 / 4)
    assert m["recall_at_5"] == pytest.approx(1.0)
    assert m["map"] == pytest.approx((1 / 2 + 1 / 2 + 1 + 1 / 4) / 4)


def test_product_batches_hold_k_photos_of_p_products_and_skip_singletons() -> None:
    import random

    products = {f"p{i}": [3 * i, 3 * i + 1, 3 * i + 2] for i in range(7)} | {"solo": [99]}

    batches = product_batches(products, 3, 2, random.Random(0))

    rows = [r for b in batches for r in b]
    assert 99 not in rows
    assert len(rows) == len(set(rows)) and len(batches) == 2  # 7 products: 3 + 3 (+1 dropped)
    assert all(len(b) == 6 for b in batches)


def test_the_cached_trunk_and_the_head_make_the_whole_network() -> None:
    from batch_jobs.similarity.model import EmbeddingNet

    torch.manual_seed(0)
    net = EmbeddingNet("resnet18", 16).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        whole = net(x)
        parts = net.head(net.trunk(x))
    torch.testing.assert_close(whole, parts)
    assert torch.linalg.norm(whole, dim=1) == pytest.approx([1.0, 1.0], abs=1e-5)
