"""Decoding on the model's device (nvJPEG on CUDA) gives the Pillow path's crops. These tests
run the very same code with `device="cpu"`: everything but the CUDA decode call."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from batch_jobs.facets import device_decode
from batch_jobs.facets.data import prepare_photo
from batch_jobs.facets.preprocess import CropConfig, PreprocessConfig
from batch_jobs.locator.preprocess import resize_image
from shared.images import read_photo

FULL = (2000, 3000)
BOX = (560.0, 420.0, 1460.0, 2820.0)  # the dress of the catalog photo, full-size pixels


def mean_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.to(torch.int16) - b.to(torch.int16)).abs().float().mean())


@pytest.fixture(scope="module")
def photos(catalog_photo):
    return [read_photo(catalog_photo()), read_photo(catalog_photo(orientation=6))]


@pytest.mark.parametrize("bodice", [None, 0.3])
def test_device_crops_match_the_pillow_crops(photos, bodice):
    config = PreprocessConfig(224, crop=CropConfig("loc-1", margin=0.08, bodice=bodice))
    decoded = device_decode.decode_batch(photos, "cpu")
    for photo, image in zip(photos, decoded, strict=True):
        assert tuple(image.shape) == (3, FULL[1], FULL[0])  # upright: EXIF applied
        on_device = device_decode.crop_input(image, config, BOX)
        pillow = prepare_photo(photo, config, BOX)
        assert on_device.shape == pillow.shape == (3, 224, 224)
        assert mean_abs_diff(on_device, pillow) < 3.0


def test_a_model_without_crop_gets_the_whole_photo_resized(photos):
    config = PreprocessConfig(64)
    (image,) = device_decode.decode_batch(photos[:1], "cpu")
    whole = device_decode.crop_input(image, config, None)
    assert mean_abs_diff(whole, prepare_photo(photos[0], config)) < 3.0


def test_locator_inputs_match_the_pillow_small_decode(photos):
    (image,) = device_decode.decode_batch(photos[:1], "cpu")
    small = device_decode.locator_inputs([image], 128)[0]
    pillow = torch.from_numpy(np.array(resize_image(photos[0].decode(128, 128), 128))).permute(
        2, 0, 1
    )
    assert mean_abs_diff(small, pillow) < 3.0


def test_only_all_jpeg_batches_decode_on_the_device(photos):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    assert device_decode.decodes_on_device(photos)
    assert not device_decode.decodes_on_device([*photos, read_photo(buf.getvalue())])
    assert not device_decode.decodes_on_device([])
