"""The one crop: the box widened by a margin, clamped to the image."""

from __future__ import annotations

import pytest
from PIL import Image

from batch_jobs.crop import crop_to_box, expand_box


def test_margin_widens_each_side_by_a_share_of_the_box():
    # 40 x 20 box, margin 0.1 -> 4 px left/right, 2 px top/bottom.
    assert expand_box((20, 30, 60, 50), 100, 100, margin=0.1) == (16, 28, 64, 52)


def test_clamped_at_the_image_border():
    assert expand_box((2, 1, 98, 60), 100, 64, margin=0.2) == (0, 0, 100, 64)
    assert expand_box((-10, -5, 50, 200), 100, 64, margin=0.0) == (0, 0, 50, 64)


def test_fractional_boxes_round_outwards():
    assert expand_box((10.4, 10.6, 20.2, 20.9), 100, 100, margin=0.0) == (10, 10, 21, 21)


def test_degenerate_box_still_gives_a_pixel():
    assert expand_box((100, 64, 100, 64), 100, 64, margin=0.1) == (99, 63, 100, 64)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="margin"):
        expand_box((0, 0, 1, 1), 10, 10, margin=-0.1)
    with pytest.raises(ValueError, match="x0 <= x1"):
        expand_box((5, 0, 1, 1), 10, 10)


def test_crop_to_box_crops_the_widened_box():
    img = Image.new("RGB", (64, 48), (0, 0, 0))
    img.paste((255, 0, 0), (10, 10, 30, 20))
    crop = crop_to_box(img, (10, 10, 30, 20), margin=0.5)
    assert crop.size == (40, 20)  # 20 x 10 box + 10 px / 5 px on each side
    assert crop.getpixel((20, 10)) == (255, 0, 0)
    assert crop.getpixel((0, 0)) == (0, 0, 0)
    assert crop_to_box(img, (50, 40, 64, 48), margin=1.0).size == (28, 16)  # clamped
