"""Box regression loss: L1 on the edges plus generalized IoU (as in DETR)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.ops import generalized_box_iou_loss


class BoxRegressionLoss(nn.Module):
    """`l1_weight * L1(edges) + giou_weight * (1 - GIoU)`, averaged over boxes.

    L1 pulls every edge towards its target from far away; GIoU is scale-free, so a small dress
    counts as much as a large one, and it is what the IoU metric rewards.

    forward(pred `(N, 4)`, target `(N, 4)`, normalized `x0, y0, x1, y1`) -> scalar; N = 0 gives 0.
    """

    def __init__(self, l1_weight: float = 1.0, giou_weight: float = 1.0):
        super().__init__()
        if l1_weight < 0 or giou_weight < 0 or l1_weight + giou_weight == 0:
            raise ValueError(
                f"weights must be >= 0 and not both 0, got l1={l1_weight} giou={giou_weight}"
            )
        self.l1_weight = l1_weight
        self.giou_weight = giou_weight

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        if pred.shape != target.shape or pred.ndim != 2 or pred.shape[-1] != 4:
            raise ValueError(
                f"expected pred and target (N, 4), got {tuple(pred.shape)} and "
                f"{tuple(target.shape)}"
            )
        if pred.shape[0] == 0:
            return pred.sum() * 0.0  # keeps the graph, contributes nothing
        l1 = (pred - target).abs().sum(dim=1).mean()
        # GIoU needs ordered boxes; a raw regression can cross its edges early in training.
        ordered = torch.cat(
            [torch.minimum(pred[:, :2], pred[:, 2:]), torch.maximum(pred[:, :2], pred[:, 2:])],
            dim=1,
        )
        giou = generalized_box_iou_loss(ordered, target, reduction="mean")
        return self.l1_weight * l1 + self.giou_weight * giou
