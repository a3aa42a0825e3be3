"""Locator evaluation: IoU of the predicted box with the labelled one, on the test split.

IoU does not change when both boxes are scaled by the same factors per axis, so it is computed
on normalized boxes and equals the IoU in the photo's pixels.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from torch import Tensor

from batch_jobs.locator.boxes import paired_iou
from batch_jobs.locator.data import BoxData, load_data
from shared.env import Settings
from shared.ports import ObjectStore
from shared.records import LabelRecord

if TYPE_CHECKING:
    from batch_jobs.locator.inference import Locator
    from shared.registry import ModelRegistry


def evaluate(locator: Locator, data: BoxData) -> tuple[Tensor, Tensor]:
    """Per image of `data`: (IoU with its labelled box `(N,)`, fallback flag `(N,)`), through
    the locator's inference path."""
    boxes, _, fallback = locator.predict(data.images)
    return paired_iou(boxes, data.boxes), fallback


def summarize_ious(ious: Tensor) -> dict[str, float]:
    """{"mean_iou", "iou_50", "iou_75"}: the mean IoU and the shares of images with IoU >= 0.5
    and >= 0.75. No image: zeros (there is nothing to be right about)."""
    if ious.numel() == 0:
        return {"mean_iou": 0.0, "iou_50": 0.0, "iou_75": 0.0}
    return {
        "mean_iou": round(float(ious.mean()), 4),
        "iou_50": round(float((ious >= 0.5).float().mean()), 4),
        "iou_75": round(float((ious >= 0.75).float().mean()), 4),
    }


def evaluate_locator(
    locator: Locator,
    records: Iterable[LabelRecord],
    catalog: ObjectStore,
    *,
    settings: Settings | None = None,
) -> dict[str, float]:
    """{"mean_iou", "iou_50", "iou_75"} of `locator` on the boxed test images of `records`
    (unreadable images are left out, as in training)."""
    settings = settings or Settings()
    data, _ = load_data(
        records,
        catalog,
        split="test",
        input_size=locator.config.input_size,
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
    )
    ious, _ = evaluate(locator, data)
    return summarize_ious(ious)


def evaluate_current_locator(
    registry: ModelRegistry,
    records: Iterable[LabelRecord],
    catalog: ObjectStore,
    *,
    settings: Settings | None = None,
) -> dict[str, float] | None:
    """What `dressvision evaluate --json` shows as "locator": the current locator's figures on
    the test split of `records`, or None when no locator is current."""
    from batch_jobs.locator.inference import Locator

    locator = Locator.from_registry(registry)
    if locator is None:
        return None
    return evaluate_locator(locator, records, catalog, settings=settings)
