"""The locator networks, built by name with `batch_jobs.models.create_model(ModelKind.LOCATOR,
"patches" | "whole", backbone=..., input_size=..., weights=...)`.

- "patches" (the default; OverFeat / TiefVision): a backbone makes a feature map whose cells are
  the image's patches; a background head (1x1 convs) gives each patch a foreground logit and a
  location head (1x1 convs) regresses the dress box from it, as offsets of the box's edges from
  the patch center (`boxes.encode_boxes`). One dense pass evaluates every window at once.
- "whole": the baseline, one network regressing the box from the whole image.

Both share the backbones: "tiny" (a small conv net at stride 8, the default: random init learns
it fast on a CPU, and its 8-pixel cells still give a dress a few pixels wide a foreground patch)
or "resnet18" (torchvision's trunk up to layer3, stride 16, optionally from pretrained weights).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from batch_jobs.backbones import load_backbone
from batch_jobs.locator.boxes import cell_patches, decode_boxes, patch_centers
from batch_jobs.locator.combine import Combined, combine_windows
from shared.errors import ConfigurationError

ARCHS = ("patches", "whole")
BACKBONES = ("tiny", "resnet18")
STRIDES = {"tiny": 8, "resnet18": 16}  # input pixels per feature-map cell


def _conv(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def tiny_backbone() -> tuple[nn.Module, int]:
    """A small conv net at stride 8. The dilated convs at the end widen each cell's receptive
    field to about 260 input pixels (the whole image at 128-160 px), so a patch that sees part
    of the dress can still place all four of its edges."""
    trunk = nn.Sequential(
        _conv(3, 16, 2),
        _conv(16, 32, 2),
        _conv(32, 32),
        _conv(32, 64, 2),
        _conv(64, 64, dilation=2),
        _conv(64, 64, dilation=4),
        _conv(64, 64, dilation=8),
    )
    return trunk, 64


def resnet18_backbone(weights: str | Path | None = None) -> tuple[nn.Module, int]:
    """torchvision's resnet18 up to layer3 (stride 16, 256 channels). `weights`: a torchvision
    weights name (`IMAGENET1K_V1`) or resnet18 state dict file to start from, loaded by
    `batch_jobs.backbones.load_backbone`; random init without."""
    net = load_backbone("resnet18", weights)
    trunk = nn.Sequential(
        net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3
    )
    return trunk, 256


def _head(c_in: int, c_out: int, hidden: int = 64) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, c_out, 1)
    )


class PatchLocator(nn.Module):
    """Background and location networks on one dense feature map.

    forward(x `(B, 3, S, S)`) -> {"logits": `(B, K)` foreground logit per patch,
    "offsets": `(B, K, 4)` box edges relative to the patch center}, K = (S/stride)^2, row-major.
    """

    def __init__(self, trunk: nn.Module, channels: int, grid: int):
        super().__init__()
        self.trunk = trunk
        self.background_head = _head(channels, 1)
        self.location_head = _head(channels, 4)
        self.register_buffer("patches", cell_patches(grid, grid), persistent=False)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        features = self.trunk(x)
        logits = self.background_head(features).flatten(1)
        offsets = self.location_head(features).flatten(2).transpose(1, 2)
        return {"logits": logits, "offsets": offsets}

    def predict(self, x: Tensor, threshold: float) -> Combined:
        """One box per image `(B, 4)` normalized, by `combine_windows`."""
        out = self(x)
        # Combined in float32 even under autocast: a weighted mean of many boxes in bfloat16
        # would lose a pixel or two.
        boxes = decode_boxes(out["offsets"].float(), patch_centers(self.patches)[None])
        return combine_windows(torch.sigmoid(out["logits"].float()), boxes, threshold)


class WholeImageLocator(nn.Module):
    """The baseline: the box regressed from the whole image.

    forward(x `(B, 3, S, S)`) -> {"boxes": `(B, 4)` normalized}. The flattened (not pooled) map
    keeps where things are. It has no notion of background: `predict` scores every box 1.
    """

    def __init__(self, trunk: nn.Module, channels: int, grid: int):
        super().__init__()
        self.trunk = trunk
        self.reduce = nn.Sequential(nn.Conv2d(channels, 32, 1), nn.ReLU(inplace=True))
        self.regressor = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * grid * grid, 256), nn.ReLU(inplace=True), nn.Linear(256, 4)
        )

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        # Center and size through a sigmoid keep the box ordered and inside the image.
        cx, cy, w, h = torch.sigmoid(self.regressor(self.reduce(self.trunk(x)))).unbind(-1)
        boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
        return {"boxes": boxes.clamp(0.0, 1.0)}

    def predict(self, x: Tensor, threshold: float) -> Combined:
        boxes = self(x)["boxes"].float()
        n = boxes.shape[0]
        return Combined(
            boxes=boxes, scores=torch.ones(n), fallback=torch.zeros(n, dtype=torch.bool)
        )


def create_locator(
    arch: str,
    *,
    backbone: str = "tiny",
    input_size: int = 128,
    weights: str | Path | None = None,
) -> PatchLocator | WholeImageLocator:
    """A locator network by name (build it with `batch_jobs.models.create_model(
    ModelKind.LOCATOR, arch, ...)`). `input_size` must be a multiple of the backbone's stride."""
    if arch not in ARCHS:
        raise ValueError(f"unknown locator arch {arch!r}; choose one of {', '.join(ARCHS)}")
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    stride = STRIDES[backbone]
    if input_size < stride or input_size % stride:
        raise ValueError(
            f"input_size must be a positive multiple of {stride} for {backbone}, got {input_size}"
        )
    if backbone == "tiny":
        if weights is not None:
            raise ConfigurationError(
                "--weights starts a resnet18 trunk: use it with --backbone resnet18"
            )
        trunk, channels = tiny_backbone()
    else:
        trunk, channels = resnet18_backbone(weights)
    cls = PatchLocator if arch == "patches" else WholeImageLocator
    return cls(trunk, channels, input_size // stride)
