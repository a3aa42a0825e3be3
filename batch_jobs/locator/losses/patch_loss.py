"""The patch locator's loss: class-balanced background loss plus box loss on dress patches."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from batch_jobs.locator.boxes import PatchLabel
from batch_jobs.locator.losses.box_loss import BoxRegressionLoss


class PatchLocatorLoss(nn.Module):
    """Background network + location network, trained together on one dense pass.

    Background: binary cross-entropy, class-balanced per batch: the mean loss over the batch's
    foreground patches and the mean over its background patches count half each, as if every
    batch held as many of one as of the other (a dress covers a small share of most photos,
    so unbalanced the network would learn "background" everywhere). IGNORE patches take no part.
    Location: `BoxRegressionLoss` on the boxes predicted by the foreground patches only.

    forward(logits `(B, K)`, boxes `(B, K, 4)` predicted (decoded, normalized), labels `(B, K)`
    `PatchLabel` values, targets `(B, 4)` the dress box of each image) -> (total, parts) where
    parts = {"background": ..., "location": ...} detached, for logging.
    """

    def __init__(self, box_weight: float = 1.0, box_loss: BoxRegressionLoss | None = None):
        super().__init__()
        if box_weight <= 0:
            raise ValueError(f"box_weight must be > 0, got {box_weight}")
        self.box_weight = box_weight
        self.box_loss = box_loss or BoxRegressionLoss()

    def forward(
        self, logits: Tensor, boxes: Tensor, labels: Tensor, targets: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        b, k = logits.shape
        if boxes.shape != (b, k, 4) or labels.shape != (b, k) or targets.shape != (b, 4):
            raise ValueError(
                f"expected logits (B, K), boxes (B, K, 4), labels (B, K), targets (B, 4); got "
                f"{tuple(logits.shape)}, {tuple(boxes.shape)}, {tuple(labels.shape)}, "
                f"{tuple(targets.shape)}"
            )
        fg = labels == PatchLabel.FOREGROUND
        bg = labels == PatchLabel.BACKGROUND
        per_patch = F.binary_cross_entropy_with_logits(logits, fg.float(), reduction="none")
        parts = [per_patch[mask].mean() for mask in (fg, bg) if mask.any()]
        background = sum(parts) / len(parts) if parts else logits.sum() * 0.0
        fg_boxes = boxes[fg]
        fg_targets = targets[:, None, :].expand(b, k, 4)[fg]
        location = self.box_loss(fg_boxes, fg_targets)
        total = background + self.box_weight * location
        return total, {
            "background": float(background.detach()),
            "location": float(location.detach()),
        }
