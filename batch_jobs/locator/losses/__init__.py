"""Locator losses, one per file."""

from batch_jobs.locator.losses.box_loss import BoxRegressionLoss
from batch_jobs.locator.losses.patch_loss import PatchLocatorLoss

__all__ = ["BoxRegressionLoss", "PatchLocatorLoss"]
