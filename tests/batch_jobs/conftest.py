"""Catalog-size photos for the reduced-scale and device decoding tests."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageDraw, ImageFilter

from shared.images import EXIF_ORIENTATION

FULL = (2000, 3000)


def product_photo(size: tuple[int, int] = FULL, orientation: int = 1) -> bytes:
    """A smooth 'dress on a backdrop' photo at catalog size (JPEG, quality 90), as a camera
    would store it: rotated, with the orientation tag, when `orientation` is 6."""
    img = Image.new("RGB", size, (236, 232, 226))
    draw = ImageDraw.Draw(img)
    draw.polygon(
        [(800, 420), (1220, 420), (1460, 2820), (560, 2820)], fill=(150, 30, 60), outline=None
    )
    draw.ellipse((880, 300, 1140, 560), fill=(210, 170, 140))  # head over the neckline
    for y in range(900, 2800, 140):  # a pattern: stripes the crop must keep in place
        draw.line([(600, y), (1420, y + 40)], fill=(240, 200, 60), width=18)
    img = img.filter(ImageFilter.GaussianBlur(2))
    exif = Image.Exif()
    if orientation == 6:  # stored rotated 90 degrees clockwise... upright after transposing
        img = img.transpose(Image.Transpose.ROTATE_90)
        exif[EXIF_ORIENTATION] = 6
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()


@pytest.fixture(scope="session")
def catalog_photo():
    """`product_photo`: a 2000 x 3000 JPEG (quality 90), stored rotated when asked."""
    return product_photo
