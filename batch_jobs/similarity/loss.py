"""The triplet hinge loss of the supervised embedder, with negatives mined inside the batch.

DeepRank (Wang et al., 2014), as TiefVision used it, trains one network with shared weights on
(reference, similar, dissimilar) triplets with the hinge `max(0, m + d(r, s) - d(r, d))`, the
loss `torch.nn.TripletMarginLoss` computes (Euclidean distance, margin `m`). Here a triplet is
(a photo, another photo of the same product, a photo of another product), built inside each
batch of P products x K photos: every ordered anchor-positive pair of a product is a triplet,
and its negative is mined among the batch's other products.

Mining is **semi-hard** (FaceNet, Schroff et al., 2015): the closest negative that is still
farther from the anchor than the positive; when there is none, the farthest negative. Why not
the hardest negative: a catalog has near-duplicate products (the same cut in another shade,
photographed the same way), and with K = 2-3 photos and wrong labels among them, the hardest
negative is often a look-alike or a mislabelled photo. Training on it from the start collapses
the embedding (every distance the same, loss stuck at the margin), as FaceNet reported; the
semi-hard negative still teaches (it violates or nearly violates the margin) without that.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def pairwise_distances(embeddings: Tensor, eps: float = 1e-8) -> Tensor:
    """Euclidean distances (N, N), differentiable at zero."""
    squared = torch.cdist(embeddings, embeddings).pow(2)
    return (squared.clamp_min(0.0) + eps).sqrt()


class SemiHardTripletLoss(nn.Module):
    """Mean hinge over every anchor-positive pair of the batch with its semi-hard negative.

    `forward(embeddings (N, D), labels (N,))`: `labels` are product indices. Pairs with no
    negative in the batch (one product only) are skipped; a batch without any triplet gives 0.
    """

    def __init__(self, margin: float = 0.2):
        super().__init__()
        if margin <= 0:
            raise ValueError(f"margin must be positive, got {margin}")
        self.margin = margin

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        dist = pairwise_distances(embeddings.float())
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        positive_pairs = same & ~eye  # (anchor, positive)
        negative = ~same  # (anchor, negative)
        if not positive_pairs.any() or not negative.any():
            return embeddings.sum() * 0.0
        anchors, positives = positive_pairs.nonzero(as_tuple=True)
        d_ap = dist[anchors, positives]  # (T,)
        d_an = dist[anchors]  # (T, N): anchor to every photo
        valid = negative[anchors]  # (T, N)
        inf = torch.finfo(d_an.dtype).max
        # Semi-hard: the closest negative farther than the positive.
        farther = valid & (d_an > d_ap[:, None])
        semi_hard = torch.where(farther, d_an, torch.full_like(d_an, inf)).min(dim=1).values
        # Fallback when every negative is closer than the positive: the farthest negative.
        easiest = torch.where(valid, d_an, torch.full_like(d_an, -inf)).max(dim=1).values
        has_semi_hard = farther.any(dim=1)
        has_negative = valid.any(dim=1)
        chosen = torch.where(has_semi_hard, semi_hard, easiest)
        losses = torch.relu(d_ap - chosen + self.margin)[has_negative]
        return losses.mean() if len(losses) else embeddings.sum() * 0.0
