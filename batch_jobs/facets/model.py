"""The facet model: a torchvision ResNet backbone, an optional spatial transformer in front,
and one linear head per facet (outputs in the taxonomy's label order). Built by name with
`batch_jobs.models.create_model(ModelKind.FACETS, arch, heads=...)`.

timm-style surface: `forward_features` (pooled features), `forward_head`, `forward` -> logits
per facet. Pretrained weights (a torchvision weights name or a state dict file) are loaded by
`batch_jobs.backbones.load_backbone`; without them the backbone starts from random init.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torchvision
from torch import Tensor, nn

from batch_jobs.backbones import load_backbone
from batch_jobs.facets.stn import SpatialTransformer
from shared.errors import ConfigurationError

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


def create_facet_net(
    name: str = DEFAULT_ARCH,
    heads: Mapping[str, int] | None = None,
    *,
    stn: bool = False,
    weights: str | Path | None = None,
) -> FacetNet:
    """A `FacetNet` on the torchvision backbone `name` (e.g. "resnet18", "resnet50"); build it
    with `batch_jobs.models.create_model(ModelKind.FACETS, name, ...)`.

    `heads` maps facet -> number of classes. `weights`: a torchvision weights name
    (`IMAGENET1K_V1`) or state dict file of the same architecture (`batch_jobs.backbones`; its
    ImageNet classifier is dropped); without it the backbone is random.
    """
    if name not in backbone_names():
        names = ", ".join(backbone_names())
        raise ConfigurationError(f"unknown backbone {name!r}; use one of {names}")
    backbone = load_backbone(name, weights)
    features = backbone.fc.in_features
    backbone.fc = nn.Identity()
    return FacetNet(backbone, features, heads or {}, stn=stn)
