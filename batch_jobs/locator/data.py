"""Training data of the locator: the boxed images of a labels snapshot, small and in memory.

Only records with a dress box take part (the others stay in the facet model's data). Images
are checked by `shared.images.read_photo` and decoded at the smallest JPEG DCT scale still at
least the input size, as the jobs' inference gets them; an image that cannot be read is
skipped and reported, never a crash. At the locator's input size an image is 3 x S x S bytes
(48 KiB at 128 px: 480 MB for 10k photos), so they are decoded once and no epoch decodes again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm import tqdm

from batch_jobs.locator.boxes import normalize_box
from batch_jobs.locator.preprocess import resize_image, to_batch
from shared.errors import InvalidImageError, NotFoundError
from shared.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, read_photo
from shared.ports import ObjectStore
from shared.records import ImageStatus, LabelRecord

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BoxData:
    """Images `(N, 3, S, S)` uint8 (channels-last memory) with their dress boxes `(N, 4)`
    normalized, and their ids."""

    images: Tensor
    boxes: Tensor
    image_ids: list[str]

    def __len__(self) -> int:
        return len(self.image_ids)


@dataclass(frozen=True)
class Skipped:
    image_id: str
    reason: str


def boxed_records(records: Iterable[LabelRecord], split: str) -> list[LabelRecord]:
    """The ok records of `split` that have a dress box, in a stable order."""
    chosen = [
        r for r in records if r.split == split and r.bbox is not None and r.status == ImageStatus.OK
    ]
    return sorted(chosen, key=lambda r: r.image_id)


def load_data(
    records: Iterable[LabelRecord],
    catalog: ObjectStore,
    *,
    split: str,
    input_size: int,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = False,
) -> tuple[BoxData, list[Skipped]]:
    """Decode the boxed images of `split`, resized to `input_size`, with normalized boxes."""
    images, boxes, ids, skipped = [], [], [], []
    chosen = boxed_records(records, split)
    bar = tqdm(chosen, desc=f"locator {split} images", unit="img", disable=not progress)
    for record in bar:
        try:
            body = catalog.get(record.object_key).body
            photo = read_photo(body, max_bytes=max_bytes, max_pixels=max_pixels)
            img = photo.decode(input_size, input_size)
        except (InvalidImageError, NotFoundError) as exc:
            logger.warning("locator: skipping %s: %s", record.image_id, exc)
            skipped.append(Skipped(record.image_id, str(exc)))
            continue
        images.append(resize_image(img, input_size))
        # The box is in pixels of the full-size upright photo (EXIF applied), the one the network
        # sees reduced, so normalize by its full size.
        boxes.append(normalize_box(record.bbox, photo.width, photo.height))
        ids.append(record.image_id)
    if images:
        data = BoxData(to_batch(images), torch.stack(boxes), ids)
    else:
        empty = torch.zeros((0, 3, input_size, input_size), dtype=torch.uint8)
        data = BoxData(empty, torch.zeros((0, 4)), [])
    return data, skipped
