"""Facet model quality and training time on a generated catalog (issue 4, item 7).

1. `dressvision synth-catalog` a 500-product catalog (seed 0, ~1,500 images) and import it.
2. `dressvision train` with the default settings (locator trained first, facets on its crops),
   timed: the locator, the facet model, the whole command.
3. Generalization: a fresh catalog with another seed (never seen in training) imported into a
   second home, the trained models copied there, and evaluated on all its images.

Targets: facet model < 10 min, whole command < 15 min on the 2-core CPU, test macro F1 >= 0.9
on every facet. Writes bench/results/train_quality.json.

    .venv/bin/python bench/train_quality.py [--products 500] [--fresh-products 300]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from batch_jobs.evaluate import evaluate_version  # noqa: E402
from batch_jobs.facets.data import facet_targets  # noqa: E402
from batch_jobs.facets.metrics import split_report  # noqa: E402
from local.commands.importer import import_catalog  # noqa: E402
from local.commands.train import summarize, training_args  # noqa: E402
from local.runtime import LocalRuntime  # noqa: E402
from local.synth_catalog import generate_catalog  # noqa: E402
from shared.keys import MODELS_PREFIX  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "train_quality.json"


def imported_home(work: Path, name: str, products: int, seed: int) -> LocalRuntime:
    catalog = work / f"catalog-{name}"
    generate_catalog(catalog, products=products, seed=seed)
    runtime = LocalRuntime.open(work / f"home-{name}", environ={})
    summary = import_catalog(runtime, catalog, progress=False)
    print(f"{name}: {summary.imported} images imported, {len(summary.invalid)} invalid", flush=True)
    return runtime


def cli_args(*argv: str) -> argparse.Namespace:
    """`dressvision train ARGV` as the command's own parser reads it (defaults included)."""
    from local.commands import train as train_command

    parser = argparse.ArgumentParser(prog="dressvision")
    train_command.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["train", *argv])


def copy_models(source: LocalRuntime, target: LocalRuntime) -> None:
    for key in source.ports.artifacts.list(MODELS_PREFIX):
        target.ports.artifacts.put(key, source.ports.artifacts.get(key).body)


def all_images_report(evaluation, taxonomy) -> dict[str, float]:
    """Macro F1 per facet over every evaluated image (train and test splits together)."""
    facets = list(taxonomy.facet_names)
    targets = facet_targets(evaluation.prepared.records, taxonomy, facets, strict=False).numpy()
    labels = {f: taxonomy.labels(f) for f in facets}
    report = split_report(evaluation.probs, targets, facets, labels)
    return {f: round(r["macro_f1"], 4) for f, r in report.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh-products", type=int, default=300)
    parser.add_argument("--fresh-seed", type=int, default=1)
    parser.add_argument("--work", type=Path, default=None, help="folder for catalogs and homes")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-train-"))

    runtime = imported_home(work, "train", args.products, args.seed)
    started = time.perf_counter()
    from batch_jobs.train import train

    job_args = training_args(cli_args("--json"), runtime.settings)
    recipe = {
        name: getattr(job_args, name)
        for name in (
            "arch",
            "image_size",
            "epochs",
            "batch_size",
            "optimizer",
            "lr",
            "warmup_epochs",
            "label_smoothing",
            "ema",
            "crop_margin",
            "bodice",
            "seed",
            "locator",
            "oof_folds",
        )
    }
    result = train(job_args, runtime.ports)
    command_s = time.perf_counter() - started
    trained = summarize(result)
    # The facet model alone: not the snapshot, nor the out-of-fold models the default also trains.
    facet_s = sum(
        v for k, v in result.seconds.items() if k not in ("total", "snapshot", "out_of_fold")
    )

    fresh = imported_home(work, "fresh", args.fresh_products, args.fresh_seed)
    copy_models(runtime, fresh)
    evaluation = evaluate_version(fresh.ports, result.version, store=False)
    taxonomy = evaluation_taxonomy(evaluation)
    without = evaluation.without_crop
    report = {
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()},
        "commands": [
            f"dressvision synth-catalog CAT --products {args.products} --seed {args.seed}",
            "dressvision --home H import CAT",
            "dressvision --home H train",
            f"dressvision synth-catalog FRESH --products {args.fresh_products} "
            f"--seed {args.fresh_seed}; import into H2 with H's models; dressvision evaluate",
        ],
        "recipe": recipe,
        "images": result.metrics["images"],
        "seconds": {
            "whole_command": round(command_s, 1),
            "facet_model": round(facet_s, 1),
            "facet_phases": result.seconds,
        },
        "locator": result.locator,
        "version": result.version,
        "test_macro_f1": trained["facets"],
        "test_macro_f1_without_crop": _f1s(result.metrics.get("without_crop"), "test"),
        "fresh_catalog": {
            "products": args.fresh_products,
            "seed": args.fresh_seed,
            "images": len(evaluation.prepared.records),
            "macro_f1_all_images": all_images_report(evaluation, taxonomy),
            "macro_f1_without_crop": _f1s(without, "test"),
        },
        "targets": {"facet_model_s": 600, "whole_command_s": 900, "test_macro_f1": 0.9},
    }
    report["meets_targets"] = bool(
        facet_s < 600
        and command_s < 900
        and all(v["test"] >= 0.9 for v in trained["facets"].values())
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


def evaluation_taxonomy(evaluation):
    from shared.taxonomy import Taxonomy

    return Taxonomy(
        {f: tuple(r["per_class"]) for f, r in evaluation.document["splits"]["test"].items()}
    )


def _f1s(document: dict | None, split: str) -> dict[str, float] | None:
    if not document:
        return None
    return {f: round(r["macro_f1"], 4) for f, r in document["splits"][split].items()}


if __name__ == "__main__":
    sys.exit(main())
