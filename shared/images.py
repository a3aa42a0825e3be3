"""Safe image loading: every catalog photo goes through here before anything decodes it.

Uploads are untrusted. The checks run cheapest first: byte size, magic bytes (never the file
extension), the dimensions from the header against a pixel limit (decompression bombs are refused
before a single pixel is decoded), then a full decode so that truncated or corrupt files fail here
and not deep inside a training job. Pillow's own bomb check stays on as a second line of defence
and its error and warning become our `InvalidImageError`. We never set
`ImageFile.LOAD_TRUNCATED_IMAGES`: a truncated photo is an invalid upload, not a grey half-image.

libjpeg only *warns* when the entropy-coded data ends early at a marker (a file cut short with an
end-of-image marker added, a header claiming a larger image than its data) and fills the rest
with grey; Pillow does not surface those warnings. `_check_jpeg_complete` detects them: it
decodes again with filler bytes before the end marker. A complete image never reads them (the
decoder skips bytes after its last scan), so both decodes agree; a short one decodes them as
image data, so they differ.

Orientation: boxes, widths and heights are in the UPRIGHT image, EXIF orientation applied
(`open_image` transposes; `validate_image` reports the upright size), everywhere: ingest,
training and inference.

Reduced-scale decoding: a 2000 x 3000 catalog photo takes tens of milliseconds to decode in full,
far more than the models need (the locator reads 128 x 128, the facet model a few hundred pixels
of the dress crop). `read_photo` runs every header check and returns a `Photo` that decodes on
demand at the smallest JPEG DCT scale (1/8, 1/4, 1/2 or 1, Pillow's `draft`) still at least the
size asked for: libjpeg then skips most of the inverse DCT and the colour conversion. Boxes stay
in the full-size upright image's pixels; scale them by `decoded.width / photo.width`.

Pillow and numpy only: this module runs in Lambdas.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image, ImageOps, UnidentifiedImageError

from shared.env import Settings
from shared.errors import InvalidImageError

if TYPE_CHECKING:
    import numpy as np

DEFAULT_MAX_BYTES = Settings.max_image_bytes
DEFAULT_MAX_PIXELS = Settings.max_image_pixels

# (format, prefix test) in the order they are tried.
_MAGIC: tuple[tuple[str, tuple[bytes, ...]], ...] = (
    ("JPEG", (b"\xff\xd8\xff",)),
    ("PNG", (b"\x89PNG\r\n\x1a\n",)),
    ("GIF", (b"GIF87a", b"GIF89a")),
    ("TIFF", (b"II*\x00", b"MM\x00*")),
    ("BMP", (b"BM",)),
)
# IEND has no data, so its chunk (type and CRC) is always these bytes.
_PNG_END = b"IEND\xaeB`\x82"
# Everything a decoder or a malformed file may throw while decoding.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, IndexError, EOFError, MemoryError)
# Modes that Pillow converts to RGB correctly by itself (alpha handled separately).
_DIRECT_RGB_MODES = {"RGB", "CMYK", "YCbCr", "L", "1", "P", "RGBX"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


@dataclass(frozen=True)
class ImageInfo:
    """What the header said about a valid image. `width` and `height` are the upright image's
    (EXIF orientation applied, as `open_image` returns it); `orientation` is the EXIF tag
    (1 = stored upright)."""

    format: str
    width: int
    height: int
    mode: str
    orientation: int = 1


EXIF_ORIENTATION = 0x0112
_SWAPS_AXES = {5, 6, 7, 8}  # transposed or rotated by 90 / 270 degrees
# Filler for `_check_jpeg_complete`: fixed pseudo-random bytes, never 0xFF (a marker).
_JPEG_FILLER = bytes((i * 73 + 41) % 255 for i in range(512))
_JPEG_EOI = b"\xff\xd9"


def sniff_format(head: bytes) -> str | None:
    """The image format from the first bytes (at least 12 for WEBP), or None if unknown."""
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    for fmt, prefixes in _MAGIC:
        if head.startswith(prefixes):
            return fmt
    return None


def validate_image(data: bytes, *, max_bytes: int, max_pixels: int) -> ImageInfo:
    """Check that `data` is a complete image within the limits, or raise `InvalidImageError`.

    JPEGs are decoded at reduced scale (libjpeg still reads the whole entropy-coded stream, so a
    truncated file still fails); other formats are decoded fully.
    """
    img, info = _open_checked(data, max_bytes=max_bytes, max_pixels=max_pixels)
    with img:
        orientation = _orientation(img)
        draft = (max(1, info.width // 4), max(1, info.height // 4))
        if info.format == "JPEG":
            img.draft("RGB", draft)
        _load(img)
        if info.format == "JPEG":
            _check_jpeg_complete(data, img, draft)
    if orientation in _SWAPS_AXES:
        return ImageInfo(info.format, info.height, info.width, info.mode, orientation)
    return ImageInfo(info.format, info.width, info.height, info.mode, orientation)


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(EXIF_ORIENTATION, 1)
    except _DECODE_ERRORS as exc:
        raise InvalidImageError(f"truncated or corrupt image: bad EXIF ({exc})") from exc
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _check_jpeg_complete(data: bytes, decoded: Image.Image, draft: tuple[int, int]) -> None:
    """Refuse a JPEG whose scan data ends before the image does (see the module docstring):
    decode it again with filler before its last end marker and compare."""
    end = data.rfind(_JPEG_EOI)
    if end < 0:
        raise InvalidImageError("truncated or corrupt image: the JPEG has no end marker")
    padded = data[:end] + _JPEG_FILLER + data[end:]
    try:
        with Image.open(io.BytesIO(padded), formats=["JPEG"]) as again:
            again.draft("RGB", draft)
            again.load()
            same = again.size == decoded.size and again.tobytes() == decoded.tobytes()
    except _DECODE_ERRORS:
        same = False
    if not same:
        raise InvalidImageError(
            "truncated or corrupt image: the JPEG data ends before the image does (libjpeg "
            "would fill the rest with grey)"
        )


def open_image(
    source: bytes | str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """A validated, fully loaded RGB image with its EXIF orientation applied.

    `source` is the file's bytes or a path. Alpha (RGBA, LA, palette transparency) is composited
    on white, 16-bit and 32-bit grey are rescaled to 8 bits (not clipped), CMYK and palette
    images are converted. Raises `InvalidImageError` for anything we do not accept.
    """
    data = source if isinstance(source, bytes | bytearray) else _read_file(source, max_bytes)
    img, _ = _open_checked(bytes(data), max_bytes=max_bytes, max_pixels=max_pixels)
    with img:
        return _upright_rgb(img)


@dataclass(frozen=True)
class Photo:
    """A photo whose header passed every check, not yet decoded: its bytes and its upright full
    size (`width`, `height`, EXIF orientation applied). Build with `read_photo`."""

    data: bytes
    format: str
    width: int
    height: int
    orientation: int = 1

    def decode(self, min_width: int | None = None, min_height: int | None = None) -> Image.Image:
        """The upright RGB image at the smallest JPEG DCT scale whose size is still at least
        `min_width x min_height` (the full size when not given, or for other formats).
        Raises `InvalidImageError` for a truncated or corrupt stream, as `open_image` does."""
        img, _ = _open_checked(self.data, max_bytes=len(self.data), max_pixels=self.pixels)
        with img:
            if self.format == "JPEG" and (min_width or min_height):
                wanted = (max(1, min_width or 1), max(1, min_height or 1))
                if self.orientation in _SWAPS_AXES:  # draft works on the stored image
                    wanted = (wanted[1], wanted[0])
                img.draft("RGB", wanted)
            return _upright_rgb(img)

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_photo(
    source: bytes | str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Photo:
    """A `Photo` from a file's bytes or path after the header checks of `open_image` (size,
    magic bytes, pixel limit): nothing is decoded yet. Raises `InvalidImageError`."""
    data = bytes(source if isinstance(source, bytes | bytearray) else _read_file(source, max_bytes))
    img, info = _open_checked(data, max_bytes=max_bytes, max_pixels=max_pixels)
    with img:
        orientation = _orientation(img)
    if orientation in _SWAPS_AXES:
        return Photo(data, info.format, info.height, info.width, orientation)
    return Photo(data, info.format, info.width, info.height, orientation)


def _upright_rgb(img: Image.Image) -> Image.Image:
    """Decode `img` (opened, possibly drafted), apply its EXIF orientation, convert to RGB."""
    _load(img)
    try:
        oriented = ImageOps.exif_transpose(img)
    except _DECODE_ERRORS as exc:  # a malformed EXIF block is a corrupt file too
        raise InvalidImageError(f"truncated or corrupt image: bad EXIF ({exc})") from exc
    return to_rgb(oriented)


def to_rgb(img: Image.Image) -> Image.Image:
    """`img` as 8-bit RGB: alpha on white, high bit depths rescaled to 0..255."""
    mode = img.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        import numpy as np  # only for these rare modes: numpy costs a Lambda cold start

        return Image.fromarray(_to_uint8(np.asarray(img)), mode="L").convert("RGB")
    if mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode in _DIRECT_RGB_MODES:
        return img.convert("RGB")
    try:
        return img.convert("RGB")
    except ValueError as exc:
        raise InvalidImageError(f"unsupported colour mode {mode}; convert it to RGB") from exc


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Scale grey levels to 0..255. 16-bit data (anything within 0..65535) maps 65535 -> 255;
    other ranges (32-bit, float) are stretched from their own min..max."""
    import numpy as np

    arr = values.astype(np.float64)
    if np.issubdtype(values.dtype, np.floating):
        lo, hi = (0.0, 1.0) if arr.min() >= 0.0 and arr.max() <= 1.0 else (arr.min(), arr.max())
    elif arr.min() >= 0 and arr.max() <= 65535:
        lo, hi = 0.0, 65535.0
    else:
        lo, hi = float(arr.min()), float(arr.max())
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.clip(np.rint((arr - lo) * scale), 0, 255).astype(np.uint8)


def _read_file(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """Read a file, refusing an oversized one before reading it into memory."""
    try:
        size = os.stat(path).st_size
        if size > max_bytes:
            raise InvalidImageError(f"file too large ({size} bytes > limit {max_bytes})")
        with open(path, "rb") as fh:
            return fh.read(max_bytes + 1)
    except OSError as exc:
        raise InvalidImageError(f"cannot read image file {os.fspath(path)!r}: {exc}") from exc


def _open_checked(data: bytes, *, max_bytes: int, max_pixels: int) -> tuple[Image.Image, ImageInfo]:
    """Run every check that needs only the header; return the lazily opened image."""
    if not data:
        raise InvalidImageError("empty file")
    if len(data) > max_bytes:
        raise InvalidImageError(f"file too large ({len(data)} bytes > limit {max_bytes})")
    fmt = sniff_format(data[:16])
    if fmt is None:
        raise InvalidImageError(f"not an image (unrecognised header, starts with {data[:8]!r})")
    img = _open_header(data, fmt, max_pixels)
    width, height = img.size
    if width <= 0 or height <= 0:
        img.close()
        raise InvalidImageError("zero-size image")
    if width * height > max_pixels:
        img.close()
        raise _too_large(width, height, max_pixels)
    if fmt == "PNG":
        _verify_png(data)
    return img, ImageInfo(format=fmt, width=width, height=height, mode=img.mode)


def _open_header(data: bytes, fmt: str, max_pixels: int) -> Image.Image:
    """Parse the header only (Pillow opens lazily). Pillow's bomb check becomes our error."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=[fmt])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        size = _unchecked_size(data, fmt)
        if size is None:
            raise InvalidImageError(f"image too large ({exc})") from exc
        limit = max_pixels if size[0] * size[1] > max_pixels else Image.MAX_IMAGE_PIXELS
        raise _too_large(*size, limit) from exc
    except UnidentifiedImageError as exc:  # also what Pillow says for a 0 x N header
        raise InvalidImageError(f"truncated or corrupt image: unreadable {fmt} header") from exc
    except _DECODE_ERRORS as exc:
        raise InvalidImageError(f"truncated or corrupt image: {exc}") from exc


def _verify_png(data: bytes) -> None:
    """Check every chunk's CRC up to IEND, and IEND itself. Decoding alone accepts a PNG cut
    after its last IDAT chunk; `verify()` does not (it decompresses nothing), but it stops
    before IEND's own CRC, hence the last check."""
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as img:
            img.verify()
    except _DECODE_ERRORS as exc:
        raise InvalidImageError(f"truncated or corrupt image: {exc}") from exc
    if _PNG_END not in data:
        raise InvalidImageError("truncated or corrupt image: the PNG end chunk is cut short")


def _unchecked_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """The header's size for a message, read by the format's own parser without Pillow's bomb
    check (which refused it already). Nothing is decoded; None if the parser is unavailable."""
    try:
        factory, _ = Image.OPEN[fmt]
        with factory(io.BytesIO(data), "") as header:
            return header.size
    except Exception:  # only for the message: the image is refused either way
        return None


def _too_large(width: int, height: int, limit: int | None) -> InvalidImageError:
    return InvalidImageError(
        f"image too large ({width} x {height} pixels > limit {limit}); resize it before uploading"
    )


def _load(img: Image.Image) -> None:
    """Decode every pixel; a truncated or corrupt stream raises `InvalidImageError`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImageError(f"image too large ({exc})") from exc
    except _DECODE_ERRORS as exc:
        raise InvalidImageError(f"truncated or corrupt image: {exc}") from exc
