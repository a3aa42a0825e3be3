"""Locate the dress in photos with a trained locator: one box per photo, in its pixels.

Inference runs a copy of the network prepared for speed: BatchNorm folded into the convolution
before it, channels-last tensors (what oneDNN and cuDNN run fastest), and bfloat16 autocast
where the device computes it natively (the facet model's rule). The test-split figures of
`train_locator` are measured through this same path.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from batch_jobs.engine import amp_dtype, autocast, pick_device
from batch_jobs.locator.boxes import denormalize_box
from batch_jobs.locator.preprocess import LocatorConfig, normalize, resize_image, to_batch
from batch_jobs.models import create_model
from shared.registry import ModelKind, ModelRegistry

KIND = "locator"


@dataclass(frozen=True)
class LocatedBox:
    """The dress box `(x0, y0, x1, y1)` in pixels of the photo, the highest foreground
    probability of its windows, and `fallback`: no window passed the threshold, so the box is
    the whole photo."""

    box: tuple[float, float, float, float]
    score: float
    fallback: bool


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm2d that follows a Conv2d in a Sequential into that conv
    (same outputs, one pass over memory fewer). Works in place; returns `module`."""
    for child in module.children():
        fold_batchnorm(child)
    if isinstance(module, nn.Sequential):
        layers = list(module)
        for i in range(len(layers) - 1):
            conv, bn = layers[i], layers[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module[i] = fuse_conv_bn_eval(conv, bn)
                module[i + 1] = nn.Identity()
    return module


class Locator:
    """A trained locator with its preprocessing config. Build with `from_registry`."""

    def __init__(
        self,
        model: nn.Module,
        config: LocatorConfig,
        version: str | None = None,
        *,
        device: str = "auto",
        amp: bool = True,
    ):
        self.config = config
        self.version = version
        self.device = pick_device(device)
        self.dtype = amp_dtype(self.device, amp)
        fast = fold_batchnorm(copy.deepcopy(model).eval())  # the caller's model stays trainable
        self.model = fast.to(self.device, memory_format=torch.channels_last)

    @classmethod
    def from_files(
        cls, files: Mapping[str, bytes], version: str | None = None, **kwargs
    ) -> Locator:
        """A locator from a registry version's files (weights.pt, preprocess.json)."""
        config = LocatorConfig.from_json(files["preprocess.json"])
        model = create_model(
            ModelKind.LOCATOR, config.arch, backbone=config.backbone, input_size=config.input_size
        )
        state = torch.load(io.BytesIO(files["weights.pt"]), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return cls(model, config, version, **kwargs)

    @classmethod
    def from_registry(
        cls, registry: ModelRegistry, version: str | None = None, **kwargs
    ) -> Locator | None:
        """The locator `version`, or the current one; None when no locator is current.
        kwargs: `device` ("auto": the GPU when there is one), `amp`."""
        version = version or registry.current(KIND)
        if version is None:
            return None
        files = {
            name: registry.read(KIND, version, name) for name in ("weights.pt", "preprocess.json")
        }
        return cls.from_files(files, version, **kwargs)

    def predict(self, images: Tensor, batch_size: int = 64) -> tuple[Tensor, Tensor, Tensor]:
        """uint8 images `(N, 3, S, S)` at the config's input size -> (boxes `(N, 4)`
        normalized, scores `(N,)`, fallback `(N,)`), on the CPU."""
        boxes, scores, fallback = [], [], []
        with torch.inference_mode(), autocast(self.device, self.dtype):
            for start in range(0, images.shape[0], batch_size):
                x = normalize(images[start : start + batch_size].to(self.device), self.config)
                out = self.model.predict(
                    x.contiguous(memory_format=torch.channels_last), self.config.threshold
                )
                boxes.append(out.boxes.float().cpu())
                scores.append(out.scores.float().cpu())
                fallback.append(out.fallback.cpu())
        if not boxes:
            return torch.zeros((0, 4)), torch.zeros(0), torch.zeros(0, dtype=torch.bool)
        return torch.cat(boxes), torch.cat(scores), torch.cat(fallback)

    def prepare(self, img: Image.Image) -> np.ndarray:
        """The photo resized to the network's input, `(S, S, 3)` uint8. Thread-safe: a job may
        run it in its decoding threads and pass the results to `locate(..., prepared=...)`."""
        return resize_image(img, self.config.input_size)

    def locate(
        self,
        images: Sequence[Image.Image],
        batch_size: int = 64,
        *,
        prepared: Sequence[np.ndarray] | None = None,
    ) -> list[LocatedBox]:
        """One `LocatedBox` per image (RGB PIL images of any size), computed in batches.
        `prepared`: the images' `prepare` outputs, when already computed."""
        if not images:
            return []
        small = to_batch(
            list(prepared) if prepared is not None else [self.prepare(i) for i in images]
        )
        boxes, scores, fallback = self.predict(small, batch_size)
        return [
            LocatedBox(
                box=denormalize_box(box, img.width, img.height),
                score=float(score),
                fallback=bool(flag),
            )
            for img, box, score, flag in zip(images, boxes, scores, fallback, strict=True)
        ]
