"""Safe image loading: every image here is made with Pillow in the test, a few pixels big."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from shared.errors import InvalidImageError
from shared.images import ImageInfo, open_image, sniff_format, validate_image

LIMITS = {"max_bytes": 1_000_000, "max_pixels": 1_000_000}


def encode(img: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def noise_rgb(w: int = 32, h: int = 24) -> Image.Image:
    # Noise compresses badly, so a cut anywhere lands inside the pixel data.
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims `width` x `height` with almost no pixel data behind it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def reason(data: bytes, **limits) -> str:
    with pytest.raises(InvalidImageError) as info:
        validate_image(data, **(LIMITS | limits))
    return info.value.reason


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP"])
def test_sniff_format_recognises_each_format_from_its_bytes(fmt):
    assert sniff_format(encode(Image.new("RGB", (4, 4)), fmt)[:16]) == fmt


def test_sniff_format_rejects_text_and_short_heads():
    assert sniff_format(b"hello, world") is None
    assert sniff_format(b"") is None
    assert sniff_format(b"RIFF\0\0\0\0WAVE") is None


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_valid_images_pass_and_report_their_header(fmt):
    info = validate_image(encode(noise_rgb(32, 24), fmt), **LIMITS)
    assert info == ImageInfo(format=fmt, width=32, height=24, mode="RGB")
    img = open_image(encode(noise_rgb(32, 24), fmt), **LIMITS)
    assert (img.mode, img.size) == ("RGB", (32, 24))


def test_cmyk_jpeg_becomes_rgb():
    red = Image.new("CMYK", (16, 16), (0, 255, 255, 0))
    img = open_image(encode(red, "JPEG", quality=95))
    assert img.mode == "RGB"
    r, g, b = img.getpixel((8, 8))
    assert r > 230 and g < 30 and b < 30


def test_palette_png_transparency_is_composited_on_white():
    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    pal.paste(1, (0, 0, 4, 8))  # left half blue, right half index 0 = transparent
    img = open_image(encode(pal, "PNG", transparency=0))
    assert img.mode == "RGB"
    assert img.getpixel((1, 1)) == (0, 0, 255)
    assert img.getpixel((6, 1)) == (255, 255, 255)


def test_rgba_and_la_are_composited_on_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 128))
    assert open_image(encode(rgba, "PNG")).getpixel((0, 0)) == (255, 127, 127)
    la = Image.new("LA", (4, 4), (0, 0))
    assert open_image(encode(la, "PNG")).getpixel((0, 0)) == (255, 255, 255)


def test_16_bit_grey_png_is_scaled_not_clipped():
    values = np.array([[65535, 32768, 0, 1000]], dtype=np.uint16)
    data = encode(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")  # really 16-bit on disk
    img = open_image(data)
    assert img.mode == "RGB"
    assert [img.getpixel((x, 0)) for x in range(4)] == [
        (255, 255, 255),
        (128, 128, 128),
        (0, 0, 0),
        (4, 4, 4),
    ]


def test_grayscale_and_bilevel_become_rgb():
    assert open_image(encode(Image.new("L", (4, 4), 77), "PNG")).getpixel((0, 0)) == (77, 77, 77)
    img = open_image(encode(Image.new("1", (4, 4), 1), "PNG"))
    assert (img.mode, img.getpixel((0, 0))) == ("RGB", (255, 255, 255))


def test_exif_orientation_6_rotates_the_picture():
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 20, 10))  # stored top-left quarter is red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    img = open_image(encode(stored, "JPEG", quality=95, exif=exif))
    assert img.size == (20, 40)
    assert img.getpixel((15, 5))[0] > 200  # red moved to the top-right
    assert img.getpixel((5, 5))[2] > 200  # top-left is blue now
    assert img.getpixel((15, 30))[2] > 200


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("keep", [0.5, 0.9, -2, -12])
def test_truncated_files_are_rejected(fmt, keep):
    data = encode(noise_rgb(), fmt)
    cut = int(len(data) * keep) if keep > 0 else len(data) + keep
    assert reason(data[:cut]).startswith("truncated or corrupt image")
    assert not ImageFile.LOAD_TRUNCATED_IMAGES  # we never switch it on


def test_truncated_jpeg_is_rejected_by_the_cheap_draft_decode():
    big = Image.fromarray(np.random.default_rng(1).integers(0, 256, (256, 256, 3), np.uint8))
    data = encode(big, "JPEG")
    assert reason(data[: len(data) * 3 // 4]).startswith("truncated or corrupt image")


def test_a_text_file_named_jpg_is_not_an_image(tmp_path):
    path = tmp_path / "dress.jpg"
    path.write_text("name,price\nred dress,30\n")
    with pytest.raises(InvalidImageError, match=r"^not an image \(.*starts with b'name,pri'"):
        open_image(path)


def test_empty_file(tmp_path):
    assert reason(b"") == "empty file"
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(InvalidImageError, match=r"^empty file$"):
        open_image(tmp_path / "empty.jpg")


def test_over_max_bytes_is_refused_before_reading(tmp_path):
    data = encode(noise_rgb(), "PNG")
    assert reason(data, max_bytes=100) == f"file too large ({len(data)} bytes > limit 100)"
    path = tmp_path / "big.png"
    path.write_bytes(data)
    with pytest.raises(InvalidImageError, match="file too large"):
        open_image(path, max_bytes=100)


def test_pixel_limit_refuses_a_real_image_before_decoding(monkeypatch):
    data = encode(noise_rgb(20, 20), "PNG")

    def no_decoding(self):
        raise AssertionError("decoded a refused image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    assert reason(data, max_pixels=100).startswith("image too large (20 x 20 pixels > limit 100)")


@pytest.mark.parametrize("pillow_limit", [None, Image.MAX_IMAGE_PIXELS])
def test_crafted_huge_header_is_refused_without_decoding(monkeypatch, pillow_limit):
    # Our check must not depend on Pillow's global limit, and Pillow's own bomb error (which a
    # 10^10-pixel header triggers) must come out as our error.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillow_limit)
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded"))
    data = png_header_only(100_000, 100_000)
    assert len(data) < 100
    assert reason(data, max_pixels=50_000_000).startswith(
        "image too large (100000 x 100000 pixels > limit 50000000)"
    )


@pytest.mark.parametrize("pillow_limit", [40, 60])  # 2x over: error; just over: warning
def test_pillow_bomb_error_and_warning_become_our_error(monkeypatch, pillow_limit):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillow_limit)
    assert reason(encode(noise_rgb(10, 10), "PNG")).startswith("image too large (10 x 10 pixels")


def test_zero_size_header_is_refused():
    assert reason(png_header_only(0, 10)).startswith("truncated or corrupt image")
