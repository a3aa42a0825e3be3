"""The preprocessing config saved with every facet model, and the functions that apply it.

Training and inference both turn a decoded photo into the model's input with `prepare_image`
(crop to the located dress when the config says so, then resize) and `to_model_input`
(normalise), reading the same config from the registry, so they can never disagree.

Nothing is center-cropped away: the neckline sits at the top of a dress and the hem at the
bottom. The photo, or the dress crop, is resized to S x S whatever its shape ("squash"): a dress
crop is about 1.7 times taller than wide, so it is stretched sideways, which widens what tells
necklines apart (how far the neckline reaches towards the shoulders). Fitting the crop to a
square or to a 1.5 aspect instead (no distortion, more background) measured worse on necklines
(bench/results/facets.md).
"""

from __future__ import annotations

import json
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


@dataclass(frozen=True)
class PreprocessConfig:
    """How a photo becomes the model's input: S x S pixels, normalised."""

    image_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop: CropConfig | None = None
    resize: str = "squash"  # the whole photo or crop to S x S, bilinear
    channels_last: bool = field(default=True)

    def __post_init__(self) -> None:
        if self.image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels, got {self.image_size}")

    @property
    def height(self) -> int:
        return self.image_size

    @property
    def width(self) -> int:
        return self.image_size

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
    """A decoded RGB photo -> uint8 (3, S, S): cropped to `box` (when the config crops and a
    box is given), then resized. The cacheable part of preprocessing."""
    if config.crop is not None and box is not None:
        img = crop_to_box(img, box, config.crop.margin)
    size = (config.width, config.height)
    if img.size != size:
        img = img.resize(size, Image.Resampling.BILINEAR)
    array = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def to_model_input(batch: Tensor, config: PreprocessConfig) -> Tensor:
    """uint8 (N, 3, H, W) -> normalised float (N, 3, H, W), channels_last when configured."""
    mean = torch.tensor(config.mean, device=batch.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(config.std, device=batch.device).view(1, 3, 1, 1) * 255.0
    out = (batch.float() - mean) / std
    return out.contiguous(memory_format=torch.channels_last) if config.channels_last else out
