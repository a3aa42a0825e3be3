"""Data for the facet model: targets from label records, images decoded safely, located,
cropped and resized once, then augmented per epoch.

Images go through `shared.images.open_image` only; an unreadable one is skipped and reported
(`Skipped`), never a crash. Decoding runs in a thread pool (Pillow releases the GIL while it
decodes), so it overlaps with locating and with the model. Prepared images are kept in memory as
uint8 (3 x S x S bytes each: 49 KB at 128 px, about 0.5 GB for 10,000 images), which is what
makes several epochs cheap on a CPU.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2
from tqdm import tqdm

from batch_jobs.crop import crop_scale, scale_box
from batch_jobs.facets.loss import UNKNOWN
from batch_jobs.facets.preprocess import PreprocessConfig, prepare_image
from shared.env import Settings
from shared.errors import InvalidImageError, NotFoundError, UnknownLabelError
from shared.images import Photo, open_image, read_photo
from shared.ports import ObjectStore
from shared.records import LabelRecord
from shared.taxonomy import Taxonomy

log = logging.getLogger(__name__)

T = TypeVar("T")
LOAD_ERRORS = (InvalidImageError, NotFoundError)


@dataclass(frozen=True)
class Skipped:
    """An image left out, and why (for people)."""

    image_id: str
    reason: str


@dataclass
class PreparedImages:
    """Prepared images of the records that could be read, in input order."""

    images: Tensor  # uint8 (M, 3, H, W)
    records: list[LabelRecord]
    boxes: list[tuple[float, float, float, float] | None]
    box_scores: list[float | None]
    skipped: list[Skipped] = field(default_factory=list)


def facet_targets(
    records: Sequence[LabelRecord],
    taxonomy: Taxonomy,
    facets: Sequence[str],
    *,
    strict: bool = True,
) -> Tensor:
    """(N, F) long class indices in the taxonomy's order; -1 where a facet is unknown.

    A label the taxonomy does not know raises `UnknownLabelError`, or with `strict=False`
    (evaluating a model trained on an older taxonomy) counts as unknown.
    """
    targets = torch.full((len(records), len(facets)), UNKNOWN, dtype=torch.long)
    for row, record in enumerate(records):
        for column, facet in enumerate(facets):
            label = record.facets.get(facet)
            if label is None:
                continue
            try:
                targets[row, column] = taxonomy.index(facet, label)
            except UnknownLabelError:
                if strict:
                    raise
                log.warning("%s: %s %r is not in the taxonomy", record.image_id, facet, label)
    return targets


def read_image(store: ObjectStore, key: str, settings: Settings) -> Image.Image:
    """Fetch and safely decode one object. Raises InvalidImageError or NotFoundError."""
    body = store.get(key).body
    return open_image(
        body, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
    )


@dataclass(frozen=True)
class Loaded:
    """A photo whose header passed the checks, and its decode at the locator's small input
    size, made in a loading thread (decoding reads the whole stream, so a corrupt file fails
    there and is skipped). The crop is decoded later, at the scale its box needs."""

    photo: Photo
    small: Image.Image | None = None


def load_photo(
    store: ObjectStore, key: str, settings: Settings, small: int | None = None
) -> Loaded:
    """Fetch one object, check its header and, given `small`, decode it at a DCT scale of at
    least `small x small`. Raises InvalidImageError or NotFoundError."""
    body = store.get(key).body
    photo = read_photo(
        body, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
    )
    return Loaded(photo, photo.decode(small, small) if small else None)


def locate_photos(items: Sequence[Loaded | Photo | Image.Image], locator: Any) -> list:
    """The locator's boxes in each photo's full-size pixels, found on its small decode (boxes
    are predicted normalized, so they scale back exactly)."""
    size = locator.config.input_size
    full = [item.photo if isinstance(item, Loaded) else item for item in items]
    small = [_small_decode(item, size) for item in items]
    located = locator.locate(small)
    return [
        replace(found, box=scale_box(found.box, f.width / s.width, f.height / s.height))
        for f, s, found in zip(full, small, located, strict=True)
    ]


def _small_decode(item: Loaded | Photo | Image.Image, size: int) -> Image.Image:
    if isinstance(item, Loaded):
        return item.small if item.small is not None else item.photo.decode(size, size)
    return item if isinstance(item, Image.Image) else item.decode(size, size)


def prepare_photo(
    item: Loaded | Photo | Image.Image,
    config: PreprocessConfig,
    box: Sequence[float] | None = None,
) -> Tensor:
    """`prepare_image` of a photo decoded at the smallest scale that still gives the model its
    input resolution for this crop (`box` in full-size pixels). A decoded image is used as is."""
    if isinstance(item, Image.Image):
        return prepare_image(item, config, box)
    photo = item.photo if isinstance(item, Loaded) else item
    size = (config.width, config.height)
    if config.crop is None or box is None:
        return prepare_image(photo.decode(*size), config)
    crop = config.crop
    factor = crop_scale(box, photo.width, photo.height, size, crop.margin, crop.bodice)
    img = photo.decode(math.ceil(photo.width * factor), math.ceil(photo.height * factor))
    return prepare_image(
        img, config, scale_box(box, img.width / photo.width, img.height / photo.height)
    )


def prepare_many(
    items: Sequence[Loaded | Photo | Image.Image],
    boxes: Sequence[Sequence[float] | None],
    config: PreprocessConfig,
    pool: ThreadPoolExecutor,
) -> list[Tensor | Exception]:
    """`prepare_photo` of each item with its box, decoded and cropped in `pool`'s threads
    (Pillow releases the GIL while decoding and resizing); a `LOAD_ERRORS` exception in place
    of the tensor for a photo whose data turned out corrupt."""

    def safe(item: Loaded | Photo | Image.Image, box: Sequence[float] | None):
        try:
            return prepare_photo(item, config, box)
        except LOAD_ERRORS as exc:
            return exc

    return list(pool.map(safe, items, boxes))


def decode_ahead(
    items: Iterable[T], load: Callable[[T], Any], *, workers: int = 2, ahead: int = 64
) -> Iterator[tuple[T, Any]]:
    """`(item, load(item))` in input order, loading up to `ahead` items in the background.
    A `LOAD_ERRORS` exception is yielded in place of the result, not raised."""

    def safe(item: T) -> Any:
        try:
            return load(item)
        except LOAD_ERRORS as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending = []
        for item in items:
            pending.append((item, pool.submit(safe, item)))
            if len(pending) >= ahead:
                first, future = pending.pop(0)
                yield first, future.result()
        for item, future in pending:
            yield item, future.result()


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last one shorter)."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def prepare_records(
    records: Sequence[LabelRecord],
    catalog: ObjectStore,
    settings: Settings,
    config: PreprocessConfig,
    *,
    locator: Any | None = None,
    batch_size: int = 64,
    workers: int = 2,
    progress: bool = False,
) -> PreparedImages:
    """Decode, locate (when `locator` is given and the config crops), crop and resize every
    record's image once. Unreadable images are skipped and reported."""
    kept: list[LabelRecord] = []
    tensors: list[Tensor] = []
    boxes: list[tuple[float, float, float, float] | None] = []
    scores: list[float | None] = []
    skipped: list[Skipped] = []
    small = locator.config.input_size if locator is not None and config.crop else None
    decoded = decode_ahead(
        records, lambda r: load_photo(catalog, r.object_key, settings, small), workers=workers
    )
    croppers = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="crop")
    bar = tqdm(total=len(records), desc="prepare images", unit="img", disable=not progress)
    for chunk in chunks(decoded, batch_size):
        good = [(r, img) for r, img in chunk if not isinstance(img, Exception)]
        for record, error in ((r, e) for r, e in chunk if isinstance(e, Exception)):
            log.warning("skipping %s: %s", record.image_id, error)
            skipped.append(Skipped(record.image_id, str(error)))
        located = _locate([img for _, img in good], locator, config)
        found_boxes = [found.box if found is not None else None for found in located]
        crops = prepare_many([img for _, img in good], found_boxes, config, croppers)
        for (record, _), found, box, crop in zip(good, located, found_boxes, crops, strict=True):
            if isinstance(crop, Exception):  # the header was fine, the data is not
                log.warning("skipping %s: %s", record.image_id, crop)
                skipped.append(Skipped(record.image_id, str(crop)))
                continue
            tensors.append(crop)
            kept.append(record)
            boxes.append(tuple(box) if box is not None else None)
            scores.append(float(found.score) if found is not None else None)
        bar.update(len(chunk))
    croppers.shutdown()
    bar.close()
    empty = torch.empty((0, 3, config.height, config.width), dtype=torch.uint8)
    images = torch.stack(tensors) if tensors else empty
    return PreparedImages(images, kept, boxes, scores, skipped)


def _locate(images: list, locator: Any | None, config: PreprocessConfig) -> list:
    if locator is None or config.crop is None or not images:
        return [None] * len(images)
    return locate_photos(images, locator)


def train_transform(height: int, width: int, hue: float = 0.0) -> v2.Transform:
    """Augmentation on uint8 (3, H, W) tensors: mild scale and aspect changes keep the neckline
    and hem in the picture; `hue` (0-0.5) rotates the hue by up to that share of the colour
    wheel, saturation and brightness kept. A catalog shows each product in one colour, so
    without it a small catalog's model learns a product's colour with its labels (the recipe's
    0.5 raised the lowest test macro F1 over three catalogs by 5 to 8 points on silhouette,
    neckline and sleeve, bench/results/train_quality.json); 0 (the default here) where colour
    is what is learned (similarity)."""
    shape = width / height  # the crop keeps about the input's own proportions
    ratio = (0.9 * shape, 1.1 * shape)
    return v2.Compose(
        [
            v2.RandomResizedCrop((height, width), scale=(0.85, 1.0), ratio=ratio),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(brightness=0.15, contrast=0.15, saturation=0.15, hue=hue),
        ]
    )


class TensorImages(Dataset):
    """`(image uint8 (3, H, W), targets (F,))` pairs, optionally transformed; with `indexed`,
    `(image, targets, index)` triples (the training dynamics follow each image by its row)."""

    def __init__(
        self,
        images: Tensor,
        targets: Tensor,
        transform: v2.Transform | None = None,
        *,
        indexed: bool = False,
    ):
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} target rows")
        self.images, self.targets, self.transform = images, targets, transform
        self.indexed = indexed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        if self.indexed:
            return image, self.targets[index], torch.tensor(index)
        return image, self.targets[index]
