"""Box geometry of the locator: IoU, the patch labelling rule, and the box target encoding.

Boxes here are `(x0, y0, x1, y1)` normalized by the image's width and height (0..1), so a box
means the same thing at every input size; pixels only appear at the edges of the package.

Tensor shapes: `(..., 4)` for boxes, `(..., 2)` for points; functions broadcast over the
leading dimensions.
"""

from __future__ import annotations

from enum import IntEnum

import torch
from torch import Tensor


class PatchLabel(IntEnum):
    """What a patch is for the background network. IGNORE patches take no part in training."""

    IGNORE = -1
    BACKGROUND = 0
    FOREGROUND = 1


# A patch is foreground when more than this share of its area lies inside the dress box.
FOREGROUND_MIN_OVERLAP = 0.5


def box_area(boxes: Tensor) -> Tensor:
    """Area of `(..., 4)` boxes -> `(...)`; degenerate boxes have area 0."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(
        min=0
    )


def intersection_area(a: Tensor, b: Tensor) -> Tensor:
    """Area of the intersection of `a` and `b` (broadcast `(..., 4)`) -> `(...)`."""
    lo = torch.maximum(a[..., :2], b[..., :2])
    hi = torch.minimum(a[..., 2:], b[..., 2:])
    wh = (hi - lo).clamp(min=0)
    return wh[..., 0] * wh[..., 1]


def paired_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of each box in `a` with the box at the same position in `b` (`(..., 4)` -> `(...)`).

    `torchvision.ops.box_iou` gives the full N x M matrix; evaluation needs the diagonal only.
    Two empty boxes have IoU 0, not NaN.
    """
    inter = intersection_area(a, b)
    union = box_area(a) + box_area(b) - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def cell_patches(grid_h: int, grid_w: int) -> Tensor:
    """The patch of each cell of a `grid_h x grid_w` feature map, row-major -> `(h*w, 4)`.

    A dense pass over the feature map is a sliding window whose stride is the cell: cell (i, j)
    stands for the patch of the image it covers, `[j/w, (j+1)/w] x [i/h, (i+1)/h]`.
    """
    ys = torch.arange(grid_h, dtype=torch.float32)
    xs = torch.arange(grid_w, dtype=torch.float32)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack(
        [gx / grid_w, gy / grid_h, (gx + 1) / grid_w, (gy + 1) / grid_h], dim=-1
    ).reshape(-1, 4)


def patch_centers(patches: Tensor) -> Tensor:
    """Centers `(..., 2)` of `(..., 4)` patches."""
    return (patches[..., :2] + patches[..., 2:]) / 2


def label_patches(patches: Tensor, boxes: Tensor) -> Tensor:
    """The background network's label of every patch, given the dress box of its image.

    patches: `(K, 4)`; boxes: `(B, 4)` -> `(B, K)` of `PatchLabel` values:
    FOREGROUND when more than half of the patch lies inside the box, BACKGROUND when the patch
    does not touch the box at all, IGNORE in between: a patch that shows a sliver of dress is
    neither a clean dress patch nor a clean background patch, so it is left out of both losses
    (at inference its probability simply tends to fall between the two).
    """
    inter = intersection_area(patches[None, :, :], boxes[:, None, :])
    share = inter / box_area(patches)[None, :]
    labels = torch.full(share.shape, int(PatchLabel.IGNORE), dtype=torch.long)
    labels[share > FOREGROUND_MIN_OVERLAP] = int(PatchLabel.FOREGROUND)
    labels[inter <= 0] = int(PatchLabel.BACKGROUND)
    return labels


def encode_boxes(boxes: Tensor, centers: Tensor) -> Tensor:
    """The location network's target: the box's four edges relative to a patch's center.

    boxes `(..., 4)` and centers `(..., 2)`, both normalized -> `(..., 4)` offsets
    `(x0 - cx, y0 - cy, x1 - cx, y1 - cy)`. Offsets are signed (a foreground patch may hang
    over an edge) and lie in [-1, 1].
    """
    return boxes - torch.cat([centers, centers], dim=-1)


def decode_boxes(offsets: Tensor, centers: Tensor) -> Tensor:
    """Inverse of `encode_boxes`: offsets `(..., 4)` from centers `(..., 2)` -> boxes `(..., 4)`."""
    return offsets + torch.cat([centers, centers], dim=-1)


def normalize_box(box: tuple[float, float, float, float], width: int, height: int) -> Tensor:
    """A pixel box of a `width x height` image -> a normalized `(4,)` box, clamped to 0..1."""
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    return (torch.tensor(box, dtype=torch.float32) / scale).clamp(0.0, 1.0)


def denormalize_box(box: Tensor, width: int, height: int) -> tuple[float, float, float, float]:
    """A normalized `(4,)` box -> pixels of a `width x height` image, clamped to the image."""
    b = box.clamp(0.0, 1.0).tolist()
    return (b[0] * width, b[1] * height, b[2] * width, b[3] * height)
