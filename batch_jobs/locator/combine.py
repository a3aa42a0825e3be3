"""The combination step: many windows' opinions -> one box per image."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

WHOLE_IMAGE = (0.0, 0.0, 1.0, 1.0)


@dataclass(frozen=True)
class Combined:
    """One box per image. boxes `(B, 4)` normalized; scores `(B,)`; fallback `(B,)` bool."""

    boxes: Tensor
    scores: Tensor
    fallback: Tensor


def combine_windows(probs: Tensor, boxes: Tensor, threshold: float) -> Combined:
    """Combine the boxes predicted by the windows of each image into one box.

    probs: `(B, K)` foreground probability of each of K windows; boxes: `(B, K, 4)` the box each
    window predicts (normalized). The boxes of windows whose probability is at least
    `threshold` are averaged, weighted by that probability. An image with no such window gets
    the whole image, flagged `fallback`. The score is the highest foreground probability of the
    image's windows: how sure the locator is that there is a dress at all.
    """
    if probs.ndim != 2 or boxes.shape != (*probs.shape, 4):
        raise ValueError(
            f"expected probs (B, K) and boxes (B, K, 4), got {tuple(probs.shape)} and "
            f"{tuple(boxes.shape)}"
        )
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a probability, got {threshold}")
    weights = torch.where(probs >= threshold, probs, torch.zeros_like(probs))
    total = weights.sum(dim=1)
    fallback = total <= 0
    mean = (weights[..., None] * boxes).sum(dim=1) / total.clamp(min=1e-12)[:, None]
    whole = torch.tensor(WHOLE_IMAGE, dtype=boxes.dtype, device=boxes.device).expand_as(mean)
    combined = torch.where(fallback[:, None], whole, mean).clamp(0.0, 1.0)
    return Combined(boxes=combined, scores=probs.max(dim=1).values, fallback=fallback)
