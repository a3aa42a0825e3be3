"""Locator benchmark (issue 3, items 5 and 7), in one run:

1. quality: a `dressvision synth-catalog` catalog (500 products by default) imported through the
   ingest handler, a labels snapshot, then `train_locator` for each arch ("patches": background +
   location networks, combined; "whole": one network regressing the box from the whole image):
   mean IoU and the shares of test images with IoU >= 0.5 and >= 0.75, training time;
2. threshold: the patches locator's mean IoU at other foreground thresholds, on the train split
   (choosing on the test split would flatter it), for the record;
3. cost: the inference job (`batch_jobs.infer.run_inference`: decode, (locate, crop), resize,
   facet model, PredictionStore) with the default facet model, without and with cropping by the
   trained locator, interleaved runs, median seconds per image.

Targets: mean IoU >= 0.8 (test split), locating adds <= 30% to the job's time per image, locator
training <= 240 s. Writes bench/results/locator.json.

    .venv/bin/python bench/locator.py                      # ~10 min on 2 cores
    .venv/bin/python bench/locator.py --archs patches      # the default only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from batch_jobs.facets.predictor import FacetTagger
from batch_jobs.facets.preprocess import CropConfig, PreprocessConfig
from batch_jobs.infer import run_inference
from batch_jobs.locator import Locator, train_locator
from batch_jobs.locator.data import load_data
from batch_jobs.locator.evaluate import evaluate, summarize_ious
from batch_jobs.locator.train import default_args
from batch_jobs.models import create_model
from batch_jobs.snapshot import export_snapshot
from batch_jobs.train import default_args as facet_default_args
from local.commands.importer import import_catalog
from local.runtime import LocalRuntime
from local.synth_catalog import generate_catalog
from shared.messages import ManifestEntry
from shared.records import ImageStatus
from shared.registry import ModelKind, ModelRegistry

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "locator.json"
TARGETS = {"mean_iou": 0.8, "locate_overhead": 0.30, "train_seconds": 240.0}


def machine() -> dict:
    """What the numbers were measured on, and what else was running then."""
    top = subprocess.run(
        ["ps", "-eo", "pcpu,etimes,args", "--sort=-pcpu"], capture_output=True, text=True
    ).stdout.splitlines()[1:6]
    return {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "top_processes": [line.strip()[:120] for line in top],
    }


def build_home(work: Path, products: int, seed: int) -> LocalRuntime:
    catalog = work / "catalog"
    summary = generate_catalog(catalog, products=products, seed=seed)
    runtime = LocalRuntime.open(work / "home", environ={})
    import_catalog(runtime, catalog, progress=False)
    print(f"catalog: {summary.images} images of {products} products", file=sys.stderr)
    return runtime


def quality(runtime: LocalRuntime, records, archs: list[str], epochs: int | None) -> dict:
    registry = ModelRegistry(runtime.ports.artifacts)
    out = {}
    for arch in archs:
        overrides = {"arch": arch} | ({"epochs": epochs} if epochs else {})
        args = default_args(**overrides)
        started = time.perf_counter()
        version, metrics, promoted = train_locator(
            records, runtime.ports.catalog, registry, args=args, settings=runtime.settings
        )
        out[arch] = {
            "version": version,
            "promoted": promoted,
            **{k: metrics[k] for k in ("mean_iou", "iou_50", "iou_75", "fallback_share")},
            "images": metrics["images"],
            "skipped": len(metrics["skipped"]),
            "epochs": args.epochs,
            "train_seconds": round(metrics["seconds"]["train"], 1),
            "total_seconds": round(time.perf_counter() - started, 1),
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        }
        print(f"{arch}: {out[arch]}", file=sys.stderr)
    return out


def threshold_sweep(runtime: LocalRuntime, records, version: str) -> dict:
    locator = Locator.from_registry(ModelRegistry(runtime.ports.artifacts), version)
    data, _ = load_data(
        records, runtime.ports.catalog, split="train", input_size=locator.config.input_size
    )
    sweep = {}
    for threshold in (0.3, 0.5, 0.7, 0.9):
        locator.config = replace(locator.config, threshold=threshold)
        ious, fallback = evaluate(locator, data)
        sweep[str(threshold)] = {
            **summarize_ious(ious),
            "fallback_share": round(float(fallback.float().mean()), 4),
        }
    return sweep


def taggers(runtime: LocalRuntime, locator_version: str) -> tuple[FacetTagger, FacetTagger]:
    """The default facet model (untrained: speed does not depend on the weights), without and
    with cropping by the locator."""
    args = facet_default_args()
    taxonomy = runtime.ports.taxonomy
    heads = {f: len(taxonomy.labels(f)) for f in taxonomy.facet_names}
    model = create_model(ModelKind.FACETS, args.arch, heads=heads)
    locator = Locator.from_registry(ModelRegistry(runtime.ports.artifacts), locator_version)
    plain = PreprocessConfig(image_size=args.image_size)
    cropping = PreprocessConfig(
        image_size=args.image_size, crop=CropConfig(locator_version, args.crop_margin)
    )
    return (
        FacetTagger(model, plain, taxonomy, version="bench-plain"),
        FacetTagger(model, cropping, taxonomy, version="bench-crop", locator=locator),
    )


def cost(runtime: LocalRuntime, locator_version: str, images: int, rounds: int) -> dict:
    ports = runtime.ports
    ok = [r for r in ports.labels.scan() if r.status == ImageStatus.OK]
    entries = [
        ManifestEntry(image_id=r.image_id, bucket=ports.catalog.name, key=r.object_key) for r in ok
    ][:images]
    plain, cropping = taggers(runtime, locator_version)
    seconds: dict[str, list[float]] = {"plain": [], "crop": []}
    for tagger in (plain, cropping):  # warm-up: oneDNN kernels, page cache
        run_inference(ports, entries[:128], tagger)
    for _ in range(rounds):  # interleaved, so a busy moment hits both alike
        for name, tagger in (("plain", plain), ("crop", cropping)):
            report = run_inference(ports, entries, tagger)
            seconds[name].append(report.seconds / report.tagged)
    plain_s, crop_s = statistics.median(seconds["plain"]), statistics.median(seconds["crop"])
    return {
        "images_per_run": len(entries),
        "rounds": rounds,
        "ms_per_image_without_locator": round(plain_s * 1000, 2),
        "ms_per_image_with_locator": round(crop_s * 1000, 2),
        "overhead": round(crop_s / plain_s - 1, 3),
        "all_runs_ms": {k: [round(v * 1000, 2) for v in vs] for k, vs in seconds.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--archs", nargs="+", default=["patches", "whole"])
    parser.add_argument("--epochs", type=int, default=None, help="default: the train default")
    parser.add_argument("--cost-images", type=int, default=512)
    parser.add_argument("--cost-rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    before = machine()
    work = Path(tempfile.mkdtemp(prefix="bench-locator-"))
    runtime = build_home(work, args.products, args.seed)
    _, records = export_snapshot(runtime.ports.labels, runtime.ports.artifacts)
    result = {
        "command": "  ".join(["python bench/locator.py", *sys.argv[1:]]),
        "catalog": {"products": args.products, "seed": args.seed, "images": len(records)},
        "machine_before": before,
        "quality": quality(runtime, records, args.archs, args.epochs),
    }
    best = max(result["quality"], key=lambda a: result["quality"][a]["mean_iou"])
    result["best_arch"] = best
    default = default_args().arch
    if "patches" in result["quality"]:
        version = result["quality"]["patches"]["version"]
        result["threshold_sweep_train_split"] = threshold_sweep(runtime, records, version)
    result["cost"] = (
        cost(runtime, result["quality"][default]["version"], args.cost_images, args.cost_rounds)
        if default in result["quality"]
        else None
    )
    result["machine_after"] = machine()
    q = result["quality"].get(default, {})
    result["targets"] = TARGETS
    result["meets_targets"] = {
        "mean_iou": q.get("mean_iou", 0) >= TARGETS["mean_iou"],
        "locate_overhead": bool(result["cost"])
        and result["cost"]["overhead"] <= TARGETS["locate_overhead"],
        "train_seconds": q.get("total_seconds", 1e9) <= TARGETS["train_seconds"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
