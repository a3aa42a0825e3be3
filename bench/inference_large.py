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
and the bound the work itself sets, 1 / (decode time + model time per image), where the model
time is both networks the job runs per photo, each alone on prepared batches: the facet model
(a) and the locator (`a_locator`); (b) / bound (target >= 0.8). The bound with the facet model
alone is reported too (`bound_facet_model_only`).

Today's job: `--baseline REV` runs the inference job of git revision REV (the job before the
reduced-scale decode and the overlap: 74b3ce9) over the same photos with the same model, in a
subprocess on that revision's code; (b) / baseline is the issue's ">= 3x today's job" (target).

Quality (`--quality`): the same model over the large photos of one split, decoded two ways: as
the job does (the locator on a 1/8 DCT decode, the crop at the smallest scale that still gives
the model its input) and in full (2000 x 3000, then resized); facet macro F1 against the labels
and locator IoU against the labeled boxes for each, and the differences (target: within 0.005).

    .venv/bin/python bench/inference_large.py                  # builds a bench home
    .venv/bin/python bench/inference_large.py --home DIR       # a home with a current model
    .venv/bin/python bench/inference_large.py --home DIR --baseline 74b3ce9 --quality test
    .venv/bin/python bench/inference_large.py --products 4 --images 16 --naive-images 4 \\
        --seconds 1 --out /tmp/large.json                      # a smoke run

Writes bench/results/inference_large.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import get_args

# The inference job runs with sleeping OpenMP threads (batch_jobs/infer.py); so does this.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from batch_jobs.facets.data import load_photo, prepare_photo  # noqa: E402
from batch_jobs.facets.predictor import FacetTagger  # noqa: E402
from batch_jobs.locator.boxes import paired_iou  # noqa: E402
from bench.inference import (  # noqa: E402
    build_home,
    end_to_end,
    machine,
    model_block,
    model_only,
    naive,
)
from shared.images import read_photo  # noqa: E402
from shared.messages import ManifestEntry  # noqa: E402
from shared.records import ImageStatus, Split  # noqa: E402
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


def large_entries(ports, split: Split | None = None) -> list[ManifestEntry]:
    """Every usable catalog photo (of `split`, given one), upscaled once into the catalog store
    under its own key."""
    entries = []
    for record in sorted(ports.labels.scan(), key=lambda r: r.image_id):
        if record.status != ImageStatus.OK or (split is not None and record.split != split):
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


def locator_only(tagger: FacetTagger, batch_size: int, seconds: float) -> float:
    """(a) for the locator: images/s of its forward (normalisation included) on prepared
    uint8 batches at its input size; 0 when the model does not crop (no locator runs)."""
    if tagger.config.crop is None:
        return 0.0
    size = tagger.locator.config.input_size
    batch = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8)
    for _ in range(3):  # warm-up
        tagger.locator.predict(batch, batch_size)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        tagger.locator.predict(batch, batch_size)
        done += batch_size
    return done / (time.perf_counter() - started)


BASELINE_RUN = """
import json, sys
from pathlib import Path
from typing import get_args
from batch_jobs.facets.predictor import FacetTagger
from batch_jobs.infer import run_inference
from local.runtime import LocalRuntime
from shared.messages import ManifestEntry
from shared.registry import ModelRegistry

home, manifest, batch_size, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ports = LocalRuntime.open(Path(home), environ={}).ports
tagger = FacetTagger.from_registry(ModelRegistry(ports.artifacts))
lines = Path(manifest).read_text().splitlines()
entries = [ManifestEntry.model_validate_json(line) for line in lines]
run_inference(ports, entries[: 2 * batch_size], tagger, batch_size=batch_size, workers=workers)
report = run_inference(ports, entries, tagger, batch_size=batch_size, workers=workers)
print(json.dumps({"images": report.tagged, "skipped": len(report.skipped),
                  "seconds": report.seconds, "images_per_s": report.tagged / report.seconds}))
"""


def baseline(home: Path, revision: str, entries, batch_size: int, workers: int) -> dict:
    """Today's job: (b) with the inference job of git `revision`, run on that revision's code
    (`git archive` into a temporary folder) over the same photos and the same model."""
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        manifest = Path(tmp) / "manifest.jsonl"
        manifest.write_text("".join(e.model_dump_json() + "\n" for e in entries))
        argv = [str(home), str(manifest), str(batch_size), str(workers)]
        env = {**os.environ, "PYTHONPATH": str(tree)}
        done = subprocess.run(
            [sys.executable, "-c", BASELINE_RUN, *argv],
            cwd=tree,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"revision": revision, **result}


def decode_quality(ports, tagger: FacetTagger, entries, batch_size: int, workers: int) -> dict:
    """The same model over the same large photos, decoded as the job does (reduced) and in
    full: facet macro F1 against the labels, mean locator IoU against the labeled boxes
    (normalized by each photo's size), the share of predictions that differ, and each
    difference (reduced - full)."""
    from sklearn.metrics import f1_score

    records = {r.image_id: r for r in ports.labels.scan()}
    facets = list(tagger.taxonomy.facet_names)
    views = {"reduced": lambda photo: photo, "full": lambda photo: photo.decode()}
    predicted: dict[str, list] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for name, view in views.items():
            rows = []
            for start in range(0, len(entries), batch_size):
                chunk = entries[start : start + batch_size]
                photos = [read_photo(ports.catalog.get(e.key).body) for e in chunk]
                tagged = tagger.tag(list(pool.map(view, photos)), pool)
                rows += list(zip(chunk, photos, tagged, strict=True))
            predicted[name] = rows
    result: dict = {"images": len(entries), "facets": {}, "locator_mean_iou": {}}
    for name, rows in predicted.items():
        truth, found = [], []
        for entry, photo, tagged in rows:
            record = records[entry.image_id]
            if tagged.box is None or record.bbox is None or not record.width:
                continue
            size, large = (record.width, record.height) * 2, (photo.width, photo.height) * 2
            truth.append(torch.tensor(record.bbox) / torch.tensor(size))
            found.append(torch.tensor(tagged.box) / torch.tensor(large))
        ious = paired_iou(torch.stack(found), torch.stack(truth)).tolist() if found else []
        result["locator_mean_iou"][name] = round(sum(ious) / len(ious), 4) if ious else None
    for facet in facets:
        scores = {}
        for name, rows in predicted.items():
            pairs = [
                (records[e.image_id].facets.get(facet), t.facets[facet].label)
                for e, _, t in rows
                if records[e.image_id].facets.get(facet)
            ]
            truth, guess = zip(*pairs, strict=True) if pairs else ((), ())
            labels = sorted(set(truth))
            scores[name] = round(
                float(f1_score(truth, guess, labels=labels, average="macro", zero_division=0)), 4
            )
        differ = sum(
            r.facets[facet].label != f.facets[facet].label
            for (_, _, r), (_, _, f) in zip(predicted["reduced"], predicted["full"], strict=True)
        )
        result["facets"][facet] = {
            **scores,
            "difference": round(scores["reduced"] - scores["full"], 4),
            "predictions_that_differ": differ,
        }
    ious = result["locator_mean_iou"]
    if ious["reduced"] is not None and ious["full"] is not None:
        result["locator_iou_difference"] = round(ious["reduced"] - ious["full"], 4)
    result["within_0_005"] = bool(
        all(abs(v["difference"]) <= 0.005 for v in result["facets"].values())
        and abs(result.get("locator_iou_difference", 0.0)) <= 0.005
    )
    return result


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
    parser.add_argument(
        "--baseline",
        metavar="REV",
        default=None,
        help="also run the inference job of git revision REV on the same photos (today's job)",
    )
    parser.add_argument(
        "--quality",
        choices=list(get_args(Split)),
        default=None,
        help="also compare reduced and full decoding on the large photos of this split",
    )
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
    a_locator = locator_only(tagger, args.batch_size, args.seconds)
    b = end_to_end(ports, tagger, repeated, args.batch_size, args.workers)
    c = naive(ports, tagger, entries[: args.naive_images])
    d = decode_only(ports, tagger, repeated[: args.decode_images], args.workers)
    model_s = 1.0 / a + (1.0 / a_locator if a_locator else 0.0)
    bound = 1.0 / (d + model_s)
    before = (
        baseline(home, args.baseline, repeated, args.batch_size, args.workers)
        if args.baseline
        else None
    )
    quality = None
    if args.quality:
        split_entries = large_entries(ports, args.quality)
        quality = {
            "split": args.quality,
            **decode_quality(ports, tagger, split_entries, args.batch_size, args.workers),
        }
    result = {
        "machine": machine(),
        "photos": {"size": list(SIZE), "jpeg_quality": 90, "distinct": len(entries)},
        "model": model_block(tagger, args.batch_size),
        "a_model_only_images_per_s": round(a, 1),
        "a_locator_only_images_per_s": round(a_locator, 1),
        "b_end_to_end_images_per_s": round(b["images_per_s"], 1),
        "b_details": b,
        "c_naive_images_per_s": round(c, 1),
        "d_decode_ms_per_image": round(1000 * d, 2),
        "bound_images_per_s": round(bound, 1),
        "bound_facet_model_only": round(1.0 / (d + 1.0 / a), 1),
        "b_over_bound": round(b["images_per_s"] / bound, 3),
        "b_over_c": round(b["images_per_s"] / c, 2),
        "baseline": before,
        "b_over_baseline": round(b["images_per_s"] / before["images_per_s"], 2) if before else None,
        "quality_reduced_vs_full": quality,
        "targets": {"b_over_bound": 0.8, "b_over_baseline": 3.0, "quality_within": 0.005},
    }
    result["meets_targets"] = bool(
        result["b_over_bound"] >= 0.8
        and (before is None or result["b_over_baseline"] >= 3.0)
        and (quality is None or quality["within_0_005"])
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(json.dumps(result, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
