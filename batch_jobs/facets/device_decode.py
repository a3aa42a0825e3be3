"""Decode a batch of JPEG photos on the model's device and make the model inputs there.

On a GPU machine the CPU cores that feed the model are the bottleneck at real photo sizes
(a g5.xlarge has 4 vCPUs for one GPU). `torchvision.io.decode_jpeg` decodes a list of JPEGs on
CUDA with nvJPEG in one call; the crops and resizes then run on the device too. The CPU (Pillow,
reduced-scale) path stays the fallback and the reference: on the CPU the same functions run with
`device="cpu"`, and a test checks both give the same crops within a tolerance. The only CUDA
specific line is the `device=` of the decode call.

Only JPEGs decode here (what catalog photos are); other formats go the Pillow way. The photos
went through `shared.images.read_photo` first (header checks), and the EXIF orientation is
applied by the decoder, so boxes are in the upright full-size image, as everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms.v2 import functional as F

from batch_jobs.crop import expand_box
from batch_jobs.facets.preprocess import PreprocessConfig
from shared.images import Photo


def decodes_on_device(photos: Sequence[Photo]) -> bool:
    """Whether this batch can take the device path (all JPEG)."""
    return bool(photos) and all(p.format == "JPEG" for p in photos)


def decode_batch(photos: Sequence[Photo], device: torch.device | str) -> list[Tensor]:
    """uint8 (3, H, W) upright RGB images of JPEG photos, decoded on `device` in one call."""
    data = [torch.frombuffer(bytearray(p.data), dtype=torch.uint8) for p in photos]
    return decode_jpeg(data, mode=ImageReadMode.RGB, device=device, apply_exif_orientation=True)


def resize(image: Tensor, size: tuple[int, int]) -> Tensor:
    """uint8 (3, H, W) -> (3, h, w) bilinear with antialiasing (what Pillow's BILINEAR does
    when it shrinks), `size` = (h, w)."""
    if tuple(image.shape[-2:]) == size:
        return image
    return F.resize(image, list(size), interpolation=F.InterpolationMode.BILINEAR, antialias=True)


def locator_inputs(images: Sequence[Tensor], size: int) -> Tensor:
    """uint8 (N, 3, S, S): each whole photo stretched to the locator's input."""
    return torch.stack([resize(img, (size, size)) for img in images])


def crop_input(image: Tensor, config: PreprocessConfig, box: Sequence[float] | None) -> Tensor:
    """`prepare_image` on a decoded tensor: the box widened by the margin, the bodice zoom,
    resized to the model's input; uint8 (3, S, S) on the image's device."""
    out = (config.height, config.width)
    if config.crop is None or box is None:
        return resize(image, out)
    height, width = image.shape[-2:]
    left, top, right, bottom = expand_box(box, width, height, config.crop.margin)
    crop = image[:, top:bottom, left:right]
    share = config.crop.bodice
    if share is None or share == 0.5:
        return resize(crop, out)
    rows = crop.shape[-2]  # magnify_top: the top `share` of the rows fills the upper half
    cut = min(max(1, round(share * rows)), rows - 1)
    upper = resize(crop[:, :cut], (out[0] // 2, out[1]))
    lower = resize(crop[:, cut:], (out[0] - out[0] // 2, out[1]))
    return torch.cat([upper, lower], dim=1)


def locate_decoded(locator, images: Sequence[Tensor]) -> tuple[list, list]:
    """The locator's boxes (full-size pixels) and scores for decoded photos, their small
    inputs made on the device."""
    from batch_jobs.locator.boxes import denormalize_box

    small = locator_inputs(images, locator.config.input_size)
    boxes, scores, _ = locator.predict(small)
    found = [
        denormalize_box(box, img.shape[-1], img.shape[-2])
        for box, img in zip(boxes, images, strict=True)
    ]
    return found, [float(s) for s in scores]
