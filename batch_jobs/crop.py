"""The one crop used by training and inference alike: the dress box widened by a margin.

Facet training crops its images with the same function and margin the infer job uses, and the
margin travels in the facet model's preprocessing config, so the two can never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image

from shared.recipe import DEFAULT_CROP_MARGIN as DEFAULT_MARGIN  # the recipe's, one value


def expand_box(
    box: Sequence[float], width: int, height: int, margin: float = DEFAULT_MARGIN
) -> tuple[int, int, int, int]:
    """The pixel box `(x0, y0, x1, y1)` widened by `margin` x its width (height) on each side,
    rounded outwards to whole pixels and clamped to a `width x height` image.

    Always at least one pixel wide and high, so a degenerate box still gives a valid crop.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (x0 <= x1 and y0 <= y1):
        raise ValueError(f"box must satisfy x0 <= x1 and y0 <= y1, got {tuple(box)}")
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    left = min(max(math.floor(x0 - dx), 0), width - 1)
    top = min(max(math.floor(y0 - dy), 0), height - 1)
    right = max(min(math.ceil(x1 + dx), width), left + 1)
    bottom = max(min(math.ceil(y1 + dy), height), top + 1)
    return left, top, right, bottom


def crop_to_box(
    img: Image.Image, box: Sequence[float], margin: float = DEFAULT_MARGIN
) -> Image.Image:
    """`img` cropped to `expand_box(box, ...)`: the dress and a little of its surroundings."""
    return img.crop(expand_box(box, img.width, img.height, margin))


def crop_scale(
    box: Sequence[float],
    width: int,
    height: int,
    out_size: tuple[int, int],
    margin: float = DEFAULT_MARGIN,
    top_share: float | None = None,
) -> float:
    """The smallest factor (<= 1) a `width x height` photo can be decoded at so that the crop of
    `box` (full-size pixels) still has at least `out_size` pixels. `top_share`: the share of
    the crop's rows resized to the upper half of the output (the bodice zoom), which needs the
    larger of its two vertical zooms."""
    left, top, right, bottom = expand_box(box, width, height, margin)
    crop_w, crop_h = right - left, bottom - top
    out_w, out_h = out_size
    rows = out_h / crop_h
    if top_share is not None and 0.0 < top_share < 1.0:
        upper, lower = out_h // 2, out_h - out_h // 2
        rows = max(rows, upper / (top_share * crop_h), lower / ((1.0 - top_share) * crop_h))
    return min(1.0, max(out_w / crop_w, rows))


def scale_box(box: Sequence[float], fx: float, fy: float) -> tuple[float, float, float, float]:
    """`box` from one image's pixels to another's, `fx` and `fy` = new size / old size."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return (x0 * fx, y0 * fy, x1 * fx, y1 * fy)
