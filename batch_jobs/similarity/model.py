"""The supervised embedder's network: a ResNet backbone (the facet model's architecture, started
from the current facet model's backbone weights), a linear projection to `dim`, L2-normalized.

One network embeds every photo of a batch: the reference, the similar and the dissimilar photo
of a triplet go through the same weights (DeepRank's shared-weight branches).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torchvision
from torch import Tensor, nn
from torch.nn import functional

from shared.keys import EMBEDDING_DIMENSIONS

DEFAULT_DIM = EMBEDDING_DIMENSIONS["supervised"]


def create_backbone(arch: str) -> tuple[nn.Module, int]:
    """A torchvision ResNet without its classifier, and its feature width. (The single place to
    route through a shared backbone loader.)"""
    backbone = torchvision.models.get_model(arch, weights=None)
    features = backbone.fc.in_features
    backbone.fc = nn.Identity()
    return backbone, features


class EmbeddingNet(nn.Module):
    """`forward(x (N, 3, H, W)) -> (N, dim)` unit vectors."""

    def __init__(self, arch: str = "resnet18", dim: int = DEFAULT_DIM):
        super().__init__()
        self.arch, self.dim = arch, dim
        self.backbone, features = create_backbone(arch)
        self.projection = nn.Linear(features, dim)

    def forward(self, x: Tensor) -> Tensor:
        return functional.normalize(self.projection(self.backbone(x)).float(), dim=1)

    def trunk(self, x: Tensor) -> Tensor:
        """The ResNet up to layer3 (the part `--sim-trunk frozen` keeps from the facet model)."""
        b = self.backbone
        return b.layer3(b.layer2(b.layer1(b.maxpool(b.relu(b.bn1(b.conv1(x)))))))

    def head(self, trunk_features: Tensor) -> Tensor:
        """layer4, pooling, projection, unit length: `forward(x) == head(trunk(x))`."""
        pooled = torch.flatten(self.backbone.avgpool(self.backbone.layer4(trunk_features)), 1)
        return functional.normalize(self.projection(pooled).float(), dim=1)

    def init_backbone(self, state: Mapping[str, Tensor]) -> None:
        """Copy the `backbone.` weights of a facet model's state dict (transfer: the facet
        model already tells dresses apart by cut, neckline and sleeve)."""
        prefix = "backbone."
        own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        missing, unexpected = self.backbone.load_state_dict(own, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"the facet model's backbone does not fit {self.arch}: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}"
            )


def unsupervised_embedding(features: Tensor) -> Tensor:
    """The unsupervised embedding: the facet model's pooled backbone features, unit length."""
    return functional.normalize(features.float(), dim=1)


def load_embedding_net(state: Mapping[str, Tensor], args: Mapping) -> EmbeddingNet:
    net = EmbeddingNet(args["arch"], int(args["dim"]))
    net.load_state_dict(state)
    return net.eval()
