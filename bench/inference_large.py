"""Inference speed on real-size catalog photos (issue 17, item 1), in one run.

Real catalog photos are 1,500-3,000 px tall; `bench/inference.py` measures small synthetic
ones, where decoding is free. This script upscales the generated catalog to 2000 x 3000 JPEGs
(quality 90) and reports:

(a) model only: the facet model's forward on prepared batches (as bench/inference.py);
(b) end to end: `run_inference` over the large photos (fetch, reduced-scale decode, locate,
    crop in threads overlapped with the model, store);
(c) the naive loop: one photo at a time, full-size decode, float32 (bench/inference.py's);
(d) decoding alone, with the job's decoding threads, at the scales the job uses (the
    locator's small decode and the crop's decode, or the model-size decode when the model
    does not crop), per image;
and the bound the work itself sets, 1 / (decode time + model time per image), with
(b) / bound (target >= 0.8) and (b) / (c) (target >= 3).

    .venv/bin/python bench/inference_large.py                  # builds a bench home
    .venv/bin/python bench/inference_large.py --home DIR       # a home with a current model
    .venv/bin/python bench/inference_large.py --products 4 --images 16 --naive-images 4 \\
        --seconds 1 --out /tmp/large.json                      # a smoke run

Not done here: the quality check of reduced against full decoding (facet macro F1 and locator
IoU on a large-photo test catalog); tests/batch_jobs/test_reduced_decode.py checks the crops.
Writes bench/results/inference_large.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from batch_jobs.facets.data import load_photo, prepare_photo  # noqa: E402
from batch_jobs.facets.predictor import FacetTagger  # noqa: E402
from bench.inference import build_home, end_to_end, model_only, naive  # noqa: E402
from shared.messages import ManifestEntry  # noqa: E402
from shared.records import ImageStatus  # noqa: E402
from shared.registry import ModelRegistry  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "inference_large.json"
SIZE = (2000, 3000)
LARGE_PREFIX = "catalog/bench-large/"


def upscale(body: bytes, size: tuple[int, int] = SIZE, quality: int = 90) -> bytes:
    """A generated photo resized to catalog size, saved as a camera would (JPEG q90)."""
    with Image.open(io.BytesIO(body)) as img:
        big = img.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    out = io.BytesIO()
    big.save(out, "JPEG", quality=quality)
    return out.getvalue()


def large_entries(ports) -> list[ManifestEntry]:
    """Every usable catalog photo, upscaled once into the catalog store under its own key."""
    entries = []
    for record in sorted(ports.labels.scan(), key=lambda r: r.image_id):
        if record.status != ImageStatus.OK:
            continue
        key = LARGE_PREFIX + record.image_id.replace("/", "__") + ".jpg"
        if not ports.catalog.exists(key):
            ports.catalog.put(key, upscale(ports.catalog.get(record.object_key).body))
        entries.append(ManifestEntry(image_id=record.image_id, bucket=ports.catalog.name, key=key))
    return entries


def decode_only(ports, tagger: FacetTagger, entries: list[ManifestEntry], workers: int) -> float:
    """(d) wall seconds per image to fetch and decode at the job's scales with the job's
    decoding threads on the same cores, nothing else running. The crop box is the middle of
    the photo (a dress's usual share of a product photo)."""
    crops = tagger.config.crop is not None
    small = tagger.locator.config.input_size if crops else None

    def decode(entry: ManifestEntry) -> None:
        loaded = load_photo(ports.catalog, entry.key, ports.settings, small)
        width, height = loaded.photo.width, loaded.photo.height
        box = (0.25 * width, 0.1 * height, 0.75 * width, 0.95 * height) if crops else None
        prepare_photo(loaded, tagger.config, box)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(decode, entries))
    return (time.perf_counter() - started) / len(entries)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--products", type=int, default=60)
    parser.add_argument("--images", type=int, default=600, help="images through (b)")
    parser.add_argument("--naive-images", type=int, default=100)
    parser.add_argument("--decode-images", type=int, default=100, help="images through (d)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of (a)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from local.runtime import LocalRuntime

    home = args.home
    if home is None:
        home = Path(tempfile.mkdtemp(prefix="bench-inference-large-")) / "home"
        build_home(home, args.products, seed=11)
    ports = LocalRuntime.open(home, environ={}).ports
    tagger = FacetTagger.from_registry(ModelRegistry(ports.artifacts))
    if tagger is None:
        raise SystemExit(f"no current facet model in {home}")
    entries = large_entries(ports)
    repeated = (entries * (args.images // max(1, len(entries)) + 1))[: args.images]

    a = model_only(tagger, args.batch_size, args.seconds)
    b = end_to_end(ports, tagger, repeated, args.batch_size, args.workers)
    c = naive(ports, tagger, entries[: args.naive_images])
    d = decode_only(ports, tagger, repeated[: args.decode_images], args.workers)
    bound = 1.0 / (d + 1.0 / a)
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "load_average_at_end": os.getloadavg(),
        },
        "photos": {"size": list(SIZE), "jpeg_quality": 90, "distinct": len(entries)},
        "model": {
            "version": tagger.version,
            "input": [tagger.config.height, tagger.config.width],
            "batch_size": args.batch_size,
            "autocast": str(tagger.dtype),
            "crop": tagger.config.crop is not None,
        },
        "a_model_only_images_per_s": round(a, 1),
        "b_end_to_end_images_per_s": round(b["images_per_s"], 1),
        "b_details": b,
        "c_naive_images_per_s": round(c, 1),
        "d_decode_ms_per_image": round(1000 * d, 2),
        "bound_images_per_s": round(bound, 1),
        "b_over_bound": round(b["images_per_s"] / bound, 3),
        "b_over_c": round(b["images_per_s"] / c, 2),
        "targets": {"b_over_bound": 0.8, "b_over_c": 3.0},
    }
    result["meets_targets"] = bool(result["b_over_bound"] >= 0.8 and result["b_over_c"] >= 3.0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(json.dumps(result, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
