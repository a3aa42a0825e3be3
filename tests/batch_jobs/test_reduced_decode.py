"""Reduced-scale decoding: a real-size photo gives the same crops as a full decode, from fewer
decoded pixels; boxes stay in full-size upright pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from batch_jobs.crop import crop_scale, expand_box
from batch_jobs.facets.data import Loaded, locate_photos, prepare_photo
from batch_jobs.facets.preprocess import CropConfig, PreprocessConfig, prepare_image
from batch_jobs.locator.inference import LocatedBox
from shared.images import Photo, open_image, read_photo

FULL = (2000, 3000)
BOX = (560.0, 420.0, 1460.0, 2820.0)  # a dress standing in the middle, full-size pixels


@pytest.fixture(scope="module")
def photo_bytes(catalog_photo) -> bytes:
    return catalog_photo()


def crop_config(bodice: float | None = None, size: int = 224) -> PreprocessConfig:
    return PreprocessConfig(size, crop=CropConfig("loc-1", margin=0.08, bodice=bodice))


def mean_abs_diff(a, b) -> float:
    return float(np.abs(a.numpy().astype(np.int16) - b.numpy().astype(np.int16)).mean())


@pytest.mark.parametrize("bodice", [None, 0.3])
def test_reduced_decode_gives_the_full_decode_crop(photo_bytes, bodice):
    config = crop_config(bodice)
    full = prepare_image(open_image(photo_bytes), config, BOX)
    reduced = prepare_photo(read_photo(photo_bytes), config, BOX)
    assert reduced.shape == full.shape == (3, 224, 224)
    assert mean_abs_diff(reduced, full) < 2.0  # of 255: resampling noise, no shift


def test_reduced_decode_decodes_fewer_pixels(photo_bytes, monkeypatch):
    decoded = []
    real = Photo.decode

    def spy(self, *args, **kwargs):
        img = real(self, *args, **kwargs)
        decoded.append(img.size)
        return img

    monkeypatch.setattr(Photo, "decode", spy)
    prepare_photo(read_photo(photo_bytes), crop_config(), BOX)
    (size,) = decoded
    assert size[0] * size[1] <= FULL[0] * FULL[1] // 16  # 1/4 scale or smaller
    # ... and still enough: the crop has at least the model's input resolution.
    left, top, right, bottom = expand_box(BOX, *FULL, 0.08)
    assert (right - left) * size[0] / FULL[0] >= 224
    assert (bottom - top) * size[1] / FULL[1] >= 224


def test_a_small_box_needs_a_larger_scale():
    big = crop_scale(BOX, *FULL, (224, 224), margin=0.08)
    small = crop_scale((900, 1000, 1100, 1300), *FULL, (224, 224), margin=0.08)
    assert big < small <= 1.0
    assert crop_scale((0, 0, 10, 10), *FULL, (224, 224)) == 1.0  # never upsampled by decoding


def test_bodice_zoom_asks_for_more_rows():
    wide = (0, 1000, 2000, 2000)  # rows, not columns, set the scale
    plain = crop_scale(wide, *FULL, (224, 224), margin=0.0)
    zoomed = crop_scale(wide, *FULL, (224, 224), margin=0.0, top_share=0.3)
    assert plain == pytest.approx(224 / 1000)
    assert zoomed == pytest.approx(112 / 300)  # 30% of the rows fill half the input


def test_orientation_sizes_and_crops_are_upright(catalog_photo):
    data = catalog_photo(orientation=6)
    photo = read_photo(data)
    assert (photo.width, photo.height) == FULL
    small = photo.decode(128, 128)
    assert small.width < small.height  # upright, reduced
    assert small.width >= 128 and small.height >= 128
    config = crop_config()
    full = prepare_image(open_image(data), config, BOX)
    assert mean_abs_diff(prepare_photo(photo, config, BOX), full) < 2.0


def test_non_jpeg_is_decoded_in_full():
    buf = io.BytesIO()
    Image.new("RGB", (400, 600), (10, 20, 30)).save(buf, "PNG")
    assert read_photo(buf.getvalue()).decode(50, 50).size == (400, 600)


class HalfBoxLocator:
    """Finds the middle half of whatever image it is given (boxes in that image's pixels)."""

    class config:  # the attribute the real Locator has
        input_size = 128

    def __init__(self):
        self.seen = []

    def locate(self, images):
        self.seen.extend(img.size for img in images)
        return [
            LocatedBox(
                (0.25 * i.width, 0.25 * i.height, 0.75 * i.width, 0.75 * i.height), 0.9, False
            )
            for i in images
        ]


def test_boxes_found_on_the_small_decode_are_in_full_size_pixels(photo_bytes):
    photo = read_photo(photo_bytes)
    locator = HalfBoxLocator()
    (found,) = locate_photos([Loaded(photo, photo.decode(128, 128))], locator)
    assert found.box == pytest.approx((500.0, 750.0, 1500.0, 2250.0))
    assert locator.seen == [(250, 375)]  # the 1/8 decode: the locator reads a small image
