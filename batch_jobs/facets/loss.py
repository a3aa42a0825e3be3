"""The facet loss: class-weighted cross-entropy per facet, masked where a facet is unknown.

Weighting (for imbalance): a class seen `n_c` times among `n` training labels of a facet with
`K` classes weighs `w_c = n / (K * n_c)` ("balanced", as scikit-learn defines it), clipped to
[`MIN_WEIGHT`, `MAX_WEIGHT`] so that a class with a handful of examples cannot dominate; a class
absent from training weighs 1. Each facet's loss is the weighted mean over the samples whose
label is known (target -1 = unknown): `sum_i w[y_i] * CE_i / sum_i w[y_i]`. The total is the
mean over the facets with at least one known label in the batch, so a facet is neither favoured
nor drowned by how often it is labelled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

UNKNOWN = -1
MIN_WEIGHT = 0.1
MAX_WEIGHT = 10.0


def balanced_class_weights(targets: Tensor, num_classes: int) -> Tensor:
    """`(num_classes,)` float weights from `targets: (N,)` class indices (-1 = unknown)."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    known = targets[targets != UNKNOWN]
    counts = torch.bincount(known, minlength=num_classes).float()
    weights = torch.ones(num_classes)
    present = counts > 0
    weights[present] = known.numel() / (num_classes * counts[present])
    return weights.clamp(MIN_WEIGHT, MAX_WEIGHT)


class MaskedWeightedCrossEntropy(nn.Module):
    """`forward(logits: {facet: (N, C_f)}, targets: (N, F) long) -> scalar`.

    `facets` gives the column of each facet in `targets`; `class_weights` maps facet -> (C_f,).
    """

    def __init__(
        self,
        facets: Sequence[str],
        class_weights: Mapping[str, Tensor] | None = None,
        *,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        if not facets:
            raise ValueError("facets must name at least one facet (the columns of targets)")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        class_weights = dict(class_weights or {})
        unknown = set(class_weights) - set(facets)
        if unknown:
            raise ValueError(f"class weights given for facets not trained: {sorted(unknown)}")
        self.facets = list(facets)
        self.label_smoothing = label_smoothing
        for facet, weights in class_weights.items():
            self.register_buffer(f"weight_{facet}", torch.as_tensor(weights, dtype=torch.float))
        self._weighted = set(class_weights)

    def facet_loss(self, facet: str, logits: Tensor, target: Tensor) -> Tensor | None:
        """Weighted mean loss of one facet over its known targets; None if none is known."""
        known = target != UNKNOWN
        if not bool(known.any()):
            return None
        weight = getattr(self, f"weight_{facet}") if facet in self._weighted else None
        return F.cross_entropy(
            logits[known].float(),
            target[known],
            weight=weight,
            label_smoothing=self.label_smoothing,
        )

    def forward(self, logits: Mapping[str, Tensor], targets: Tensor) -> Tensor:
        if targets.ndim != 2 or targets.shape[1] != len(self.facets):
            raise ValueError(
                f"targets must be (N, {len(self.facets)}) for facets {self.facets}, "
                f"got {tuple(targets.shape)}"
            )
        losses = [
            loss
            for column, facet in enumerate(self.facets)
            if (loss := self.facet_loss(facet, logits[facet], targets[:, column])) is not None
        ]
        if not losses:  # a batch with no known label at all: a zero that keeps the graph
            return sum(v.sum() for v in logits.values()) * 0.0
        return torch.stack(losses).mean()
