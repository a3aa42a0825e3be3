"""The locator's preprocessing, one config shared by training and inference.

Saved as `preprocess.json` with every locator version and read back by `Locator`, so inference
can never disagree with training. The whole photo is resized (stretched) to a small square:
boxes are normalized by the photo's own width and height, so they map back exactly.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from PIL import Image
from torch import Tensor

# ImageNet statistics: what a `--weights` resnet18 expects; harmless for a net trained from scratch.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class LocatorConfig:
    """Everything inference needs to rebuild and feed the network as it was trained."""

    arch: str = "patches"
    backbone: str = "tiny"
    input_size: int = 128
    threshold: float = 0.5
    mean: tuple[float, float, float] = MEAN
    std: tuple[float, float, float] = STD
    resize: str = field(default="stretch", init=False)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2).encode()

    @classmethod
    def from_json(cls, body: bytes) -> LocatorConfig:
        raw = json.loads(body)
        raw.pop("resize", None)
        raw["mean"], raw["std"] = tuple(raw["mean"]), tuple(raw["std"])
        return cls(**raw)


def resize_image(img: Image.Image, size: int) -> np.ndarray:
    """An RGB PIL image -> `(size, size, 3)` uint8, resized with Pillow's antialiasing filter.
    Thread-safe and cheap to cache: the part of preprocessing that depends on the photo."""
    return np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))


def to_batch(arrays: list[np.ndarray]) -> Tensor:
    """`resize_image` outputs -> uint8 `(N, 3, S, S)` in channels-last memory, without a copy
    beyond the stack (torch's own uint8 permute-and-copy is slow on CPU)."""
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)


def normalize(images: Tensor, config: LocatorConfig) -> Tensor:
    """`(B, 3, S, S)` uint8 -> float, scaled to 0..1 and standardized with the config's stats
    (memory format kept)."""
    std = torch.tensor(config.std, device=images.device).view(1, 3, 1, 1) * 255.0
    mean = torch.tensor(config.mean, device=images.device).view(1, 3, 1, 1) * 255.0
    return images.float().sub_(mean).div_(std)
