"""A spatial transformer (Jaderberg et al., 2015) that learns an affine warp of its input.

Placed in front of the backbone it can learn to zoom on the dress. Its last layer starts at
zero with the identity as bias, so at initialisation it returns its input unchanged and training
starts from the plain backbone's behaviour.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IDENTITY_THETA = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
LOCALIZATION_SIZE = 64  # the small network sees a downsampled copy: cheap whatever the input


class SpatialTransformer(nn.Module):
    """`forward(x: (N, 3, H, W)) -> (N, 3, H, W)`, x warped by a predicted affine transform."""

    def __init__(self, channels: int = 3, hidden: int = 32):
        super().__init__()
        self.localization = nn.Sequential(
            nn.Conv2d(channels, 16, 5, stride=2, padding=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, hidden, 5, stride=2, padding=2),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(hidden * 16, 64),
            nn.ReLU(inplace=True),
        )
        self.theta = nn.Linear(64, 6)
        nn.init.zeros_(self.theta.weight)
        with torch.no_grad():
            self.theta.bias.copy_(torch.tensor(IDENTITY_THETA))

    def affine(self, x: Tensor) -> Tensor:
        """The predicted transforms, (N, 2, 3)."""
        small = F.interpolate(x, size=LOCALIZATION_SIZE, mode="bilinear", align_corners=False)
        return self.theta(self.localization(small)).view(-1, 2, 3)

    def forward(self, x: Tensor) -> Tensor:
        theta = self.affine(x).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
