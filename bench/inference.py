"""Inference speed of the facet model on this machine, in one run (issue 4, item 8):

(a) model only: forward throughput of the facet model at the default image size and batch on
    already prepared tensors (bf16 autocast where the CPU supports it, channels_last);
(b) the inference job end to end: image files in the catalog store -> decode -> (locate, crop)
    -> resize -> model -> PredictionRecords in the PredictionStore, through `run_inference`,
    the function `python -m batch_jobs.infer` runs (model loading timed apart);
(c) a naive baseline: one image at a time, float32, full-size decode, no overlap.

Targets: (b) >= 0.8 x (a) and (b) >= 3 x (c). Writes bench/results/inference.json.

    .venv/bin/python bench/inference.py                 # builds a bench home (~2 min)
    .venv/bin/python bench/inference.py --home DIR      # a home with a catalog and a model

With a home whose current facet model crops (a locator is current), (b) includes locating.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

# The inference job runs with sleeping OpenMP threads (batch_jobs/infer.py); so does this.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from batch_jobs.facets.data import read_image  # noqa: E402
from batch_jobs.facets.engine import forward_probs  # noqa: E402
from batch_jobs.facets.predictor import FacetTagger, facet_predictions  # noqa: E402
from batch_jobs.facets.preprocess import prepare_image, to_model_input  # noqa: E402
from batch_jobs.infer import run_inference  # noqa: E402
from shared.messages import ManifestEntry  # noqa: E402
from shared.records import ImageStatus, PredictionRecord  # noqa: E402
from shared.registry import ModelRegistry  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "inference.json"


def build_home(home: Path, products: int, seed: int) -> None:
    """A generated catalog imported through the ingest handler, and an untrained facet model
    with the default training config (speed does not depend on the weights)."""
    from batch_jobs.facets.preprocess import PreprocessConfig
    from batch_jobs.models import create_model
    from batch_jobs.train import default_args, model_files
    from local.commands.importer import import_catalog
    from local.runtime import LocalRuntime
    from local.synth_catalog import generate_catalog
    from shared.registry import ModelKind

    catalog = home.parent / "catalog"
    generate_catalog(catalog, products=products, seed=seed)
    runtime = LocalRuntime.open(home, environ={})
    import_catalog(runtime, catalog, progress=False)
    args = default_args()
    taxonomy = runtime.ports.taxonomy
    heads = {f: len(taxonomy.labels(f)) for f in taxonomy.facet_names}
    model = create_model(ModelKind.FACETS, args.arch, heads=heads)
    files = model_files(
        model, PreprocessConfig(image_size=args.image_size), taxonomy, {"test_macro_f1": 0.0}, args
    )
    registry = ModelRegistry(runtime.ports.artifacts)
    version = registry.new_version("facets")
    registry.save("facets", version, files)
    registry.promote("facets", version, metric="test_macro_f1")


def model_only(tagger: FacetTagger, batch_size: int, seconds: float) -> float:
    """(a) images/s of normalisation + forward + softmax on prepared uint8 batches."""
    shape = (batch_size, 3, tagger.config.height, tagger.config.width)
    batch = torch.randint(0, 256, shape, dtype=torch.uint8)
    with torch.inference_mode():
        for _ in range(3):  # warm-up: oneDNN builds its kernels for this shape
            forward_probs(
                tagger.model, to_model_input(batch, tagger.config), tagger.device, tagger.dtype
            )
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            forward_probs(
                tagger.model, to_model_input(batch, tagger.config), tagger.device, tagger.dtype
            )
            done += batch_size
    return done / (time.perf_counter() - started)


def end_to_end(ports, tagger, entries, batch_size: int, workers: int) -> dict:
    """(b) the job's own pipeline over `entries`."""
    run_inference(
        ports, entries[: 2 * batch_size], tagger, batch_size=batch_size, workers=workers
    )  # warm-up
    report = run_inference(ports, entries, tagger, batch_size=batch_size, workers=workers)
    return {
        "images_per_s": report.tagged / report.seconds,
        "images": report.tagged,
        "skipped": len(report.skipped),
        "seconds": report.seconds,
    }


def naive(ports, tagger: FacetTagger, entries) -> float:
    """(c) one image at a time: fetch, full decode, (locate, crop), resize, fp32 forward, put."""
    done, started = 0, time.perf_counter()
    for entry in entries:
        img = read_image(ports.catalog, entry.key, ports.settings)
        box = None
        if tagger.config.crop is not None:
            box = tagger.locator.locate([img])[0].box
        x = to_model_input(prepare_image(img, tagger.config, box)[None], tagger.config)
        with torch.inference_mode():
            probs = forward_probs(tagger.model, x.contiguous(), tagger.device, None)
        out = {f: p.numpy() for f, p in probs.items()}
        ports.predictions.put(
            PredictionRecord(
                image_id=entry.image_id,
                model_version="naive-baseline",
                facets=facet_predictions(out, 0, tagger.taxonomy),
            )
        )
        done += 1
    return done / (time.perf_counter() - started)


def machine() -> dict:
    """The machine block of an inference benchmark's JSON (the same in every one)."""
    return {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_average_at_end": os.getloadavg(),
    }


def model_block(tagger: FacetTagger, batch_size: int) -> dict:
    """The model block of an inference benchmark's JSON."""
    return {
        "version": tagger.version,
        "input": [tagger.config.height, tagger.config.width],
        "batch_size": batch_size,
        "autocast": str(tagger.dtype),
        "crop": tagger.config.crop is not None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--products", type=int, default=150)
    parser.add_argument("--images", type=int, default=1200, help="images through (b)")
    parser.add_argument("--naive-images", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of (a)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from local.runtime import LocalRuntime

    home = args.home
    if home is None:
        home = Path(tempfile.mkdtemp(prefix="bench-inference-")) / "home"
        build_home(home, args.products, seed=11)
    runtime = LocalRuntime.open(home, environ={})
    ports = runtime.ports
    started = time.perf_counter()
    tagger = FacetTagger.from_registry(ModelRegistry(ports.artifacts))
    load_s = time.perf_counter() - started
    if tagger is None:
        raise SystemExit(f"no current facet model in {home}")
    ok = [r for r in ports.labels.scan() if r.status == ImageStatus.OK]
    entries = [
        ManifestEntry(image_id=r.image_id, bucket=ports.catalog.name, key=r.object_key) for r in ok
    ]
    repeated = (entries * (args.images // max(1, len(entries)) + 1))[: args.images]

    a = model_only(tagger, args.batch_size, args.seconds)
    b = end_to_end(ports, tagger, repeated, args.batch_size, args.workers)
    b_plain = None
    if tagger.config.crop is not None:  # the same pipeline without locating, for reference
        plain = FacetTagger(
            tagger.model,
            replace(tagger.config, crop=None),
            tagger.taxonomy,
            version=tagger.version,
            device=tagger.device,
        )
        b_plain = end_to_end(ports, plain, repeated, args.batch_size, args.workers)
    c = naive(ports, tagger, entries[: args.naive_images])
    result = {
        "machine": machine(),
        "model": {**model_block(tagger, args.batch_size), "load_seconds": round(load_s, 2)},
        "a_model_only_images_per_s": round(a, 1),
        "b_end_to_end_images_per_s": round(b["images_per_s"], 1),
        "b_details": b,
        "b_without_locator_images_per_s": round(b_plain["images_per_s"], 1) if b_plain else None,
        "c_naive_images_per_s": round(c, 1),
        "b_over_a": round(b["images_per_s"] / a, 3),
        "b_over_c": round(b["images_per_s"] / c, 2),
        "targets": {"b_over_a": 0.8, "b_over_c": 3.0},
    }
    result["meets_targets"] = bool(result["b_over_a"] >= 0.8 and result["b_over_c"] >= 3.0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(json.dumps(result, indent=2, default=float))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
