"""The masked, class-weighted facet loss against a plain hand-written version."""

from __future__ import annotations

import math

import pytest
import torch

from batch_jobs.facets.loss import (
    MAX_WEIGHT,
    UNKNOWN,
    MaskedWeightedCrossEntropy,
    balanced_class_weights,
)


def hand_written(logits: dict, targets: torch.Tensor, facets: list, weights: dict) -> float:
    per_facet = []
    for column, facet in enumerate(facets):
        num = den = 0.0
        for row in range(targets.shape[0]):
            y = int(targets[row, column])
            if y == UNKNOWN:
                continue
            scores = logits[facet][row].tolist()
            log_softmax = scores[y] - math.log(sum(math.exp(s) for s in scores))
            w = float(weights[facet][y])
            num += -w * log_softmax
            den += w
        if den:
            per_facet.append(num / den)
    return sum(per_facet) / len(per_facet)


def test_weighted_masked_loss_equals_the_hand_written_version():
    torch.manual_seed(0)
    facets = ["sleeve", "neckline"]
    logits = {"sleeve": torch.randn(6, 5), "neckline": torch.randn(6, 3)}
    targets = torch.tensor([[0, 2], [1, UNKNOWN], [1, 0], [4, UNKNOWN], [UNKNOWN, 1], [1, 1]])
    weights = {
        "sleeve": torch.tensor([0.5, 2.0, 1.0, 1.0, 3.0]),
        "neckline": torch.tensor([1.0, 0.2, 4.0]),
    }
    loss = MaskedWeightedCrossEntropy(facets, weights)(logits, targets)
    assert loss.item() == pytest.approx(hand_written(logits, targets, facets, weights), rel=1e-5)


def test_unknown_labels_do_not_contribute_and_an_unlabelled_facet_is_left_out():
    facets = ["sleeve", "neckline"]
    logits = {
        "sleeve": torch.randn(3, 5, requires_grad=True),
        "neckline": torch.randn(3, 3, requires_grad=True),
    }
    targets = torch.tensor([[2, UNKNOWN], [3, UNKNOWN], [UNKNOWN, UNKNOWN]])
    loss = MaskedWeightedCrossEntropy(facets)(logits, targets)
    only_sleeve = torch.nn.functional.cross_entropy(logits["sleeve"][:2], targets[:2, 0])
    assert loss.item() == pytest.approx(only_sleeve.item())
    loss.backward()
    assert logits["sleeve"].grad[2].abs().sum() == 0  # the unknown row gets no gradient
    assert logits["neckline"].grad is None or logits["neckline"].grad.abs().sum() == 0


def test_batch_without_any_label_gives_zero_that_backpropagates():
    logits = {"sleeve": torch.randn(2, 5, requires_grad=True)}
    loss = MaskedWeightedCrossEntropy(["sleeve"])(logits, torch.full((2, 1), UNKNOWN))
    loss.backward()
    assert loss.item() == 0.0


def test_balanced_weights_follow_the_documented_formula():
    targets = torch.tensor([0] * 6 + [1] * 2 + [UNKNOWN] * 5)  # 8 known labels, 3 classes
    weights = balanced_class_weights(targets, 3)
    assert weights[0].item() == pytest.approx(8 / (3 * 6))
    assert weights[1].item() == pytest.approx(8 / (3 * 2))
    assert weights[2].item() == 1.0  # absent from training
    rare = balanced_class_weights(torch.tensor([0] * 999 + [1]), 2)
    assert rare[1].item() == MAX_WEIGHT


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="at least one facet"):
        MaskedWeightedCrossEntropy([])
    with pytest.raises(ValueError, match="not trained"):
        MaskedWeightedCrossEntropy(["sleeve"], {"neckline": torch.ones(5)})
    loss = MaskedWeightedCrossEntropy(["sleeve", "neckline"])
    with pytest.raises(ValueError, match=r"targets must be \(N, 2\)"):
        loss({"sleeve": torch.randn(2, 5)}, torch.zeros(2, 1, dtype=torch.long))
