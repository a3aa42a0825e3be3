"""Writing the catalog folder: the photos (a few corrupt on purpose), labels.csv,
labels_true.csv and corrupt.txt."""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from local.synth_catalog.render import render_photo
from local.synth_catalog.sampling import sample_products, seeded_rng
from shared.ids import image_id_for
from shared.taxonomy import load_taxonomy

BOX_COLUMNS = ("x0", "y0", "x1", "y1")
JPEG_QUALITY = 90


@dataclass(frozen=True)
class CatalogSummary:
    """What `generate_catalog` wrote."""

    root: Path
    labels_csv: Path
    labels_true_csv: Path
    corrupt_txt: Path
    products: int
    images: int
    corrupt: tuple[str, ...]  # paths relative to root
    flipped_labels: int  # (product, facet) pairs whose catalog label is wrong
    class_counts: dict[str, dict[str, int]]  # true labels per facet, counted per product
    seconds: float


def _corrupt_bytes(kind: str, jpeg: bytes, rng: np.random.Generator) -> bytes:
    if kind == "truncated-jpeg":
        return jpeg[: int(len(jpeg) * rng.uniform(0.3, 0.7))]
    if kind == "text":
        return b"This is not a photo. Product sheet: see the website.\n"
    return b""


CORRUPT_KINDS = ("truncated-jpeg", "text", "empty")


def _default_corrupt(products: int, images: int) -> int:
    share = round(0.01 * images)
    return max(share, 1) if products >= 10 else share


def _check_args(products: int, noise: float, image_size: int, photos: tuple[int, int]) -> None:
    if products < 1:
        raise ValueError(f"products must be at least 1, got {products}")
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise is a probability between 0 and 1, got {noise}")
    if image_size < 64:
        raise ValueError(f"image_size must be at least 64 pixels, got {image_size}")
    if not 1 <= photos[0] <= photos[1]:
        raise ValueError(
            f"photos_per_product must be (low, high) with 1 <= low <= high, got {photos}"
        )


def generate_catalog(
    out: Path,
    *,
    products: int,
    seed: int,
    noise: float = 0.0,
    image_size: int = 256,
    photos_per_product: tuple[int, int] = (2, 4),
    corrupt: int | None = None,
    progress: bool = False,
) -> CatalogSummary:
    """Write a synthetic catalog folder (images + labels.csv) under `out`; see the module doc.

    `out` must be empty or absent. `corrupt` is the number of deliberately broken files
    (default: about 1% of the images, at least one from 10 products on).
    """
    _check_args(products, noise, image_size, photos_per_product)
    started = time.perf_counter()
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: choose a new folder or delete it first")
    out.mkdir(parents=True, exist_ok=True)
    taxonomy = load_taxonomy()
    catalog = sample_products(
        products, seed, noise=noise, photos_per_product=photos_per_product, taxonomy=taxonomy
    )
    slots = [(p.product_id, n) for p in catalog for n in range(1, p.photos + 1)]
    n_corrupt = _default_corrupt(products, len(slots)) if corrupt is None else corrupt
    if not 0 <= n_corrupt <= len(slots):
        raise ValueError(f"corrupt must be between 0 and the number of images ({len(slots)})")
    picks = seeded_rng(seed, 3).choice(len(slots), size=n_corrupt, replace=False)
    broken = {slots[k]: CORRUPT_KINDS[i % len(CORRUPT_KINDS)] for i, k in enumerate(sorted(picks))}

    rows, true_rows, corrupt_paths = [], [], []
    bar = tqdm(catalog, disable=not progress, unit="product", desc="synth catalog")
    for index, product in enumerate(bar):
        for n in range(1, product.photos + 1):
            rng = seeded_rng(seed, 1, index, n)
            img, box = render_photo(product.style, rng, image_size)
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=JPEG_QUALITY)
            data, kind = buf.getvalue(), broken.get((product.product_id, n))
            rel = f"images/{product.product_id}/{n}.jpg"
            if kind:
                data, box = _corrupt_bytes(kind, data, rng), None
                corrupt_paths.append(rel)
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes(data)
            base = {
                "image_id": image_id_for(product.product_id, f"{n}.jpg"),
                "path": rel,
                "product_id": product.product_id,
                "split": "",
            }
            base.update(zip(BOX_COLUMNS, box or ("",) * 4, strict=True))
            rows.append(base | product.catalog_labels)
            true_rows.append(base | product.labels)

    columns = ["image_id", "path", "product_id", *taxonomy.facet_names, *BOX_COLUMNS, "split"]
    _write_csv(out / "labels.csv", columns, rows)
    _write_csv(out / "labels_true.csv", columns, true_rows)
    (out / "corrupt.txt").write_text("".join(f"{p}\n" for p in corrupt_paths))
    counts = {f: dict(Counter(p.labels[f] for p in catalog)) for f in taxonomy.facet_names}
    return CatalogSummary(
        root=out,
        labels_csv=out / "labels.csv",
        labels_true_csv=out / "labels_true.csv",
        corrupt_txt=out / "corrupt.txt",
        products=products,
        images=len(rows),
        corrupt=tuple(corrupt_paths),
        flipped_labels=sum(p.labels[f] != p.catalog_labels[f] for p in catalog for f in p.labels),
        class_counts=counts,
        seconds=time.perf_counter() - started,
    )


def _write_csv(path: Path, columns: Sequence[str], rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
