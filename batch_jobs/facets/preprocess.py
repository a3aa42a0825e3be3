"""The preprocessing config saved with every facet model, and the functions that apply it.

Training and inference both turn a decoded photo into the model's input with `prepare_image`
(crop to the located dress when the config says so, then resize) and `to_model_input`
(normalise), reading the same config from the registry, so they can never disagree.

Nothing is center-cropped away: the neckline sits at the top of a dress and the hem at the
bottom. The photo, or the dress crop, is resized to S x S whatever its shape ("squash"): a dress
crop is about 1.7 times taller than wide, so it is stretched sideways, which widens what tells
necklines apart (how far the neckline reaches towards the shoulders). Fitting the crop to a
square or to a 1.5 aspect instead (no distortion, more background) measured worse on necklines.
The crop's top share `bodice` (0.3 by default) fills the upper half of the input: the neckline
is a few pixels of a floor-length gown's crop, and this zoom gives it 1.67 times more rows at no
extra compute, while the skirt's cues (outline, length) are large enough to lose some
(bench/results/train_quality.json has the figures).
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
    """Crop to the box of this locator version, widened by `margin`. `bodice`: the top share
    of the crop that fills the upper half of the input (0.5 or None: uniform). Below 0.5 it
    magnifies the bodice, where the neckline and the sleeves' start are a few pixels, at the
    cost of the skirt, whose cues (outline, length) are large."""

    locator_version: str
    margin: float
    bodice: float | None = None

    def __post_init__(self) -> None:
        if self.bodice is not None and not 0.05 <= self.bodice <= 0.95:
            raise ValueError(f"bodice must be a share between 0.05 and 0.95, got {self.bodice}")


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
    size = (config.width, config.height)
    if config.crop is not None and box is not None:
        img = crop_to_box(img, box, config.crop.margin)
        if config.crop.bodice is not None and config.crop.bodice != 0.5:
            img = magnify_top(img, config.crop.bodice, size)
    if img.size != size:
        img = img.resize(size, Image.Resampling.BILINEAR)
    array = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def magnify_top(img: Image.Image, share: float, size: tuple[int, int]) -> Image.Image:
    """`img` resized to `size` with its top `share` of rows filling the upper half and the
    rest the lower half: a piecewise-linear vertical zoom, continuous at the seam."""
    width, height = size
    cut = min(max(1, round(share * img.height)), img.height - 1)
    top_rows = height // 2
    out = Image.new("RGB", size)
    resample = Image.Resampling.BILINEAR
    out.paste(img.crop((0, 0, img.width, cut)).resize((width, top_rows), resample), (0, 0))
    bottom = img.crop((0, cut, img.width, img.height)).resize((width, height - top_rows), resample)
    out.paste(bottom, (0, top_rows))
    return out


def to_model_input(batch: Tensor, config: PreprocessConfig) -> Tensor:
    """uint8 (N, 3, H, W) -> normalised float (N, 3, H, W), channels_last when configured."""
    mean = torch.tensor(config.mean, device=batch.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(config.std, device=batch.device).view(1, 3, 1, 1) * 255.0
    out = (batch.float() - mean) / std
    return out.contiguous(memory_format=torch.channels_last) if config.channels_last else out
