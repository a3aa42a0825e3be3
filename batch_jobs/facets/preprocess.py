"""The preprocessing config saved with every facet model, and the functions that apply it.

Training and inference both turn a decoded photo into the model's input with `prepare_image`
(crop to the located dress when the config says so, then resize) and `to_model_input`
(normalise), reading the same config from the registry, so they can never disagree.

Nothing is center-cropped away: the neckline sits at the top of a dress and the hem at the
bottom. A whole photo is resized to S x S. A dress crop is first widened (or heightened) around
its centre to the input's aspect ratio, `aspect` = height / width (dresses are about 1.7 times
taller than wide), then resized to `height x width`: one isotropic scale, so the neckline keeps
as many pixels vertically as horizontally, for the compute of an S x S input.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from batch_jobs.crop import crop_to_box

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class CropConfig:
    """Crop to the box of this locator version, widened by `margin`."""

    locator_version: str
    margin: float


def _multiple_of_8(value: float) -> int:
    return max(8, round(value / 8.0) * 8)


@dataclass(frozen=True)
class PreprocessConfig:
    """How a photo becomes the model's input. `image_size` S sets the pixel budget (S x S);
    `aspect` (height / width) shapes it, 1 for whole photos."""

    image_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop: CropConfig | None = None
    aspect: float = 1.0
    resize: str = "bilinear"
    channels_last: bool = field(default=True)

    def __post_init__(self) -> None:
        if self.image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels, got {self.image_size}")
        if not 0.25 <= self.aspect <= 4.0:
            raise ValueError(f"aspect (height / width) must be in [0.25, 4], got {self.aspect}")

    @property
    def height(self) -> int:
        if self.aspect == 1.0:
            return self.image_size
        return _multiple_of_8(self.image_size * math.sqrt(self.aspect))

    @property
    def width(self) -> int:
        if self.aspect == 1.0:
            return self.image_size
        return _multiple_of_8(self.image_size / math.sqrt(self.aspect))

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2).encode()

    @classmethod
    def from_json(cls, data: bytes | str | dict[str, Any]) -> PreprocessConfig:
        raw = json.loads(data) if isinstance(data, bytes | str) else dict(data)
        crop = raw.pop("crop", None)
        return cls(
            **{**raw, "mean": tuple(raw["mean"]), "std": tuple(raw["std"])},
            crop=CropConfig(**crop) if crop else None,
        )


def prepare_image(
    img: Image.Image, config: PreprocessConfig, box: tuple[float, ...] | None = None
) -> Tensor:
    """A decoded RGB photo -> uint8 (3, H, W): cropped to `box` shaped to the input's aspect
    (when the config crops and a box is given), then resized. The cacheable part."""
    if config.crop is not None and box is not None:
        shaped = fit_aspect(box, config.height / config.width)  # the rounded input's own
        img = crop_to_box(img, shaped, config.crop.margin)
    size = (config.width, config.height)
    if img.size != size:
        img = img.resize(size, Image.Resampling.BILINEAR)
    array = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def fit_aspect(box: Sequence[float], aspect: float) -> tuple[float, float, float, float]:
    """`box` grown around its centre to height / width = `aspect` (never shrunk)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    width, height = max(x1 - x0, 1e-6), max(y1 - y0, 1e-6)
    if height / width > aspect:
        grow = (height / aspect - width) / 2
        return x0 - grow, y0, x1 + grow, y1
    grow = (width * aspect - height) / 2
    return x0, y0 - grow, x1, y1 + grow


def to_model_input(batch: Tensor, config: PreprocessConfig) -> Tensor:
    """uint8 (N, 3, H, W) -> normalised float (N, 3, H, W), channels_last when configured."""
    mean = torch.tensor(config.mean, device=batch.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(config.std, device=batch.device).view(1, 3, 1, 1) * 255.0
    out = (batch.float() - mean) / std
    return out.contiguous(memory_format=torch.channels_last) if config.channels_last else out
