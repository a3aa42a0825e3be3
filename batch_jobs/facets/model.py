"""`create_model`: a torchvision ResNet backbone, an optional spatial transformer in front, and
one linear head per facet (outputs in the taxonomy's label order).

timm-style surface: `forward_features` (pooled features), `forward_head`, `forward` -> logits
per facet. ImageNet weights come from a torchvision state dict file (`weights`): nothing is ever
downloaded. Without one the backbone starts from random initialisation.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn

from batch_jobs.facets.stn import SpatialTransformer
from shared.errors import ConfigurationError

log = logging.getLogger(__name__)

DEFAULT_ARCH = "resnet18"
_FAMILIES = ("resnet", "resnext", "wide_resnet")


def backbone_names() -> list[str]:
    """The torchvision ResNet-family models `create_model` accepts."""
    return sorted(n for n in torchvision.models.list_models() if n.startswith(_FAMILIES))


class FacetNet(nn.Module):
    """Backbone features shared by every facet; `forward(x: (N, 3, H, W))` returns
    `{facet: logits (N, n_classes)}` with facets in construction order."""

    def __init__(
        self,
        backbone: nn.Module,
        features: int,
        heads: Mapping[str, int],
        *,
        stn: bool = False,
        dropout: float = 0.2,
    ):
        super().__init__()
        if not heads:
            raise ValueError("a facet model needs at least one head; pass {facet: n_classes}")
        self.stn = SpatialTransformer() if stn else None
        self.backbone = backbone
        self.num_features = features
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({facet: nn.Linear(features, n) for facet, n in heads.items()})

    def forward_features(self, x: Tensor) -> Tensor:
        """Pooled backbone features, (N, num_features)."""
        if self.stn is not None:
            x = self.stn(x)
        return self.backbone(x)

    def forward_head(self, features: Tensor) -> dict[str, Tensor]:
        features = self.dropout(features)
        return {facet: head(features) for facet, head in self.heads.items()}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.forward_head(self.forward_features(x))


def create_model(
    name: str = DEFAULT_ARCH,
    heads: Mapping[str, int] | None = None,
    *,
    stn: bool = False,
    weights: str | Path | None = None,
) -> FacetNet:
    """A `FacetNet` on the torchvision backbone `name` (e.g. "resnet18", "resnet50").

    `heads` maps facet -> number of classes. `weights` is a torchvision state dict of the same
    architecture (its ImageNet classifier is dropped); without it the backbone is random.
    """
    if name not in backbone_names():
        names = ", ".join(backbone_names())
        raise ConfigurationError(f"unknown backbone {name!r}; use one of {names}")
    backbone = torchvision.models.get_model(name, weights=None)
    if weights is not None:
        _load_backbone_weights(backbone, Path(weights))
    features = backbone.fc.in_features
    backbone.fc = nn.Identity()
    return FacetNet(backbone, features, heads or {}, stn=stn)


def _load_backbone_weights(backbone: nn.Module, path: Path) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError) as exc:
        raise ConfigurationError(f"cannot read backbone weights {path}: {exc}") from exc
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise ConfigurationError(
            f"{path} does not match this backbone: missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}; pass the torchvision state dict of the same --arch"
        )
    log.info("backbone initialised from %s", path)
