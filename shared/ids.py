"""Image ids and the train/test split."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import PurePosixPath

from shared.keys import CATALOG_PREFIX

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_ID_LENGTH = 200
ORIGINAL_HASH_LENGTH = 8  # hex digits of sha256(original) added to a non-ASCII id segment


def sanitize_part(part: str) -> str:
    """One id segment: ASCII letters, digits, '.', '_' and '-' only; runs of others become '-'.

    An ASCII segment is cleaned as it always was (ids and the splits derived from them never
    move). A segment with non-ASCII characters (Cyrillic, CJK, accents, ...) keeps a readable
    ASCII part (accents folded, the rest dropped) plus a short hash of the original, so that
    "Платье-1" and "Платье-2", or "café" and "cafe", stay distinct products.
    """
    stripped = part.strip()
    if stripped.isascii():
        return _UNSAFE.sub("-", stripped).strip("-.") or "x"
    folded = unicodedata.normalize("NFKD", stripped).encode("ascii", "ignore").decode()
    readable = _UNSAFE.sub("-", folded).strip("-.") or "x"
    digest = hashlib.sha256(unicodedata.normalize("NFC", stripped).encode()).hexdigest()
    return f"{readable[: MAX_ID_LENGTH // 2]}-{digest[:ORIGINAL_HASH_LENGTH]}"


def sanitize_id(raw: str) -> str:
    """A safe image id: '/'-separated safe segments, no '..', bounded length."""
    segments = str(raw).replace("\\", "/").split("/")
    # Path-like segments ("", ".", "..") carry no meaning in an id and could escape a folder.
    parts = [sanitize_part(p) for p in segments if p.strip() not in ("", ".", "..")]
    if not parts:
        raise ValueError(f"cannot make an id from {raw!r}")
    return "/".join(parts)[:MAX_ID_LENGTH]


def image_id_for(product_id: str, filename: str) -> str:
    """`<product_id>/<file stem>`, sanitized: the id when the catalog gives none."""
    return sanitize_id(f"{sanitize_part(product_id)}/{PurePosixPath(filename).stem}")


def parse_catalog_key(key: str) -> tuple[str, str]:
    """`catalog/<product_id>/<file>` -> (product_id, image_id). Raises ValueError otherwise."""
    if not key.startswith(CATALOG_PREFIX):
        raise ValueError(f"{key!r} is not under {CATALOG_PREFIX}")
    rest = PurePosixPath(key[len(CATALOG_PREFIX) :])
    if len(rest.parts) < 2:
        raise ValueError(f"{key!r} must look like {CATALOG_PREFIX}<product_id>/<image file>")
    product_id = sanitize_part(rest.parts[0])
    return product_id, image_id_for(product_id, rest.name)


def assign_split(product_id: str, test_fraction: float = 0.2, salt: str = "") -> str:
    """'train' or 'test' from a stable hash of the product id (never Python's `hash`).

    All photos of a product share a split, so similarity and facet tests never leak.
    """
    digest = hashlib.sha256(f"{salt}{product_id}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") / 2**64
    return "test" if bucket < test_fraction else "train"
