"""The humans-in-the-loop loop, measured (issue 5, item 7).

1. `dressvision synth-catalog` with 8% label noise per facet (seed 0), imported.
2. `dressvision train --oof-folds 2`: the locator, the facet model, and out-of-fold predictions
   of every train image (two fold models, each blind to half of the train products); the test
   images' predictions come from the model itself, which never trains on them.
3. Review: the confident-learning ranking of every facet (`dressvision review`), scored against
   the injected flips (catalog label != true label): precision and recall of the whole flagged
   set, and precision at the top of the ranking.
4. Every flagged label published to the simulated crowd (12 workers of 60-90% accuracy, two of
   them spammers, 3 answers a task at first), collected (`dressvision collect`) until no task
   asks for more answers: Dawid-Skene decides, asks for more, or escalates to staff (left
   unanswered here: no staff in a benchmark).
5. Retraining, the way the product does it: `maybe_retrain` (what `collect` ends with) submits
   the training job since at least `DRESSVISION_RETRAIN_THRESHOLD` labels changed; the job runs
   through the local JobRunner with the job's defaults (the current locator, the same seed) and
   is promoted if its test macro F1 on the corrected labels is not worse.

Reported: the label error rate of the store against the generator's true labels before and
after (all images, train and test), and the test macro F1 per facet of both models measured
against the TRUE test labels (the store's test labels are noisy too, and get corrected: scoring
both models on the true labels keeps the comparison fair), plus what each model's own
evaluation said. Writes bench/results/loop.json.

    .venv/bin/python bench/loop.py [--products 500] [--noise 0.08]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from batch_jobs.facets.predictor import KIND as FACETS  # noqa: E402
from local.commands.importer import import_catalog  # noqa: E402
from local.runtime import LocalRuntime  # noqa: E402
from local.synth_catalog import generate_catalog  # noqa: E402
from shared.records import ImageStatus, LabelRecord  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "loop.json"
RETRAIN_THRESHOLD = 20
INITIAL_ASSIGNMENTS = 3
MAX_COLLECT_ROUNDS = 8
TOP_K = (50, 100, 200)


def read_truth(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as handle:
        return {row["image_id"]: row for row in csv.DictReader(handle)}


def usable(runtime: LocalRuntime) -> list[LabelRecord]:
    return [r for r in runtime.ports.labels.scan() if r.status == ImageStatus.OK]


def wrong_cells(
    records: list[LabelRecord], truth: dict[str, dict[str, str]]
) -> set[tuple[str, str]]:
    """(image id, facet) of every stored label that differs from the true one."""
    return {
        (r.image_id, facet)
        for r in records
        for facet, label in r.facets.items()
        if label is not None and label != truth[r.image_id][facet]
    }


def error_rates(records: list[LabelRecord], truth: dict[str, dict[str, str]]) -> dict:
    wrong = wrong_cells(records, truth)
    split = {r.image_id: r.split for r in records}
    out = {}
    for name in ("train", "test", None):
        cells = sum(
            1
            for r in records
            if name is None or r.split == name
            for label in r.facets.values()
            if label is not None
        )
        errors = sum(1 for image_id, _ in wrong if name is None or split[image_id] == name)
        out[name or "all"] = {"wrong": errors, "labels": cells, "rate": round(errors / cells, 4)}
    return out


def ranking_quality(suspects, flipped: set[tuple[str, str]]) -> dict:
    flagged = [(s.image_id, s.facet) for s in suspects]
    hits = [cell in flipped for cell in flagged]
    caught = sum(hits)
    report = {
        "flipped_labels": len(flipped),
        "flagged": len(flagged),
        "true_flips_flagged": caught,
        "precision": round(caught / len(flagged), 4) if flagged else None,
        "recall": round(caught / len(flipped), 4) if flipped else None,
        "precision_at": {str(k): round(sum(hits[:k]) / k, 4) for k in TOP_K if len(hits) >= k},
        "per_facet": {},
    }
    for facet in sorted({f for _, f in flipped} | {s.facet for s in suspects}):
        mine = [cell in flipped for cell in flagged if cell[1] == facet]
        total = sum(1 for _, f in flipped if f == facet)
        report["per_facet"][facet] = {
            "flipped": total,
            "flagged": len(mine),
            "precision": round(sum(mine) / len(mine), 4) if mine else None,
            "recall": round(sum(mine) / total, 4) if total else None,
        }
    return report


def true_test_f1(runtime: LocalRuntime, version: str, truth) -> dict[str, float]:
    """Macro F1 per facet of model `version` on the test split's TRUE labels."""
    from batch_jobs.evaluate import evaluate_records
    from batch_jobs.facets.predictor import FacetTagger
    from shared.registry import ModelRegistry

    tagger = FacetTagger.from_registry(ModelRegistry(runtime.ports.artifacts), version)
    records = [
        r.model_copy(update={"facets": {f: truth[r.image_id][f] for f in r.facets}})
        for r in usable(runtime)
        if r.split == "test"
    ]
    evaluation = evaluate_records(tagger, records, runtime.ports, with_uncropped=False)
    test = evaluation.document["splits"]["test"]
    return {facet: round(report["macro_f1"], 4) for facet, report in test.items()}


def own_test_f1(runtime: LocalRuntime, version: str) -> dict[str, float]:
    """What the model's own evaluation said (on the store's test labels of its time)."""
    from shared.registry import ModelRegistry

    metrics = ModelRegistry(runtime.ports.artifacts).metrics(FACETS, version)
    return {f: round(r["macro_f1"], 4) for f, r in metrics["splits"]["test"].items()}


def mean(values: dict[str, float]) -> float:
    return round(sum(values.values()) / len(values), 4)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=0.08)
    parser.add_argument("--oof-folds", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None, help="folder for catalog and home")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--reuse-model",
        action="store_true",
        help="with --work: keep the current model of an earlier run (its labels untouched)",
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="dressvision-loop-"))
    started = time.perf_counter()
    seconds: dict[str, float] = {}

    def lap(name: str) -> None:
        seconds[name] = round(time.perf_counter() - started - sum(seconds.values()), 1)
        print(f"[{name}] {seconds[name]:.0f} s", flush=True)

    catalog = work / "catalog"
    if not (catalog / "labels.csv").exists():
        generate_catalog(catalog, products=args.products, seed=args.seed, noise=args.noise)
    truth = read_truth(catalog / "labels_true.csv")
    environ = {"DRESSVISION_RETRAIN_THRESHOLD": str(RETRAIN_THRESHOLD)}
    runtime = LocalRuntime.open(work / "home", environ=environ)
    import_catalog(runtime, catalog, progress=False)
    images = len(usable(runtime))
    before = error_rates(usable(runtime), truth)
    flipped = wrong_cells(usable(runtime), truth)
    print(f"{images} images, {len(flipped)} wrong labels injected", flush=True)
    lap("generate_and_import")

    from batch_jobs.train import default_args, train
    from shared.registry import ModelRegistry

    reused = ModelRegistry(runtime.ports.artifacts).current(FACETS) if args.reuse_model else None
    if reused is not None and list(runtime.ports.tasks.list()):
        raise SystemExit("--reuse-model: this home's labels were already reviewed; start afresh")
    if reused is not None:
        first = SimpleNamespace(version=reused)
    else:
        first = train(default_args(oof_folds=args.oof_folds, locator="train"), runtime.ports)
    lap("train_with_oof")

    from shared.backends import build_workforce
    from shared.relabel import collect, find_suspicious, maybe_retrain, publish_tasks

    suspects = find_suspicious(runtime.ports, first.version)
    ranking = ranking_quality(suspects, flipped)
    print(json.dumps(ranking), flush=True)
    crowd_settings = replace(
        runtime.settings,
        workforce="simulated",
        simulated_truth=str(catalog / "labels_true.csv"),
        simulated_seed=args.seed,
    )
    crowd = build_workforce(crowd_settings, runtime.ports)
    published = publish_tasks(runtime.ports, crowd, suspects, max_assignments=INITIAL_ASSIGNMENTS)
    # All answers are in at once here, so collect runs until no task asks for more; the
    # threshold is held back meanwhile so that one retraining sees every correction (on AWS,
    # a collect that crosses it submits training at once, and later answers go to the next).
    holding = replace(runtime.ports, settings=replace(runtime.settings, retrain_threshold=10**9))
    rounds = []
    for _ in range(MAX_COLLECT_ROUNDS):
        summary = collect(holding, crowd)
        rounds.append(summary.to_json())
        if not summary.asked_more:
            break
    train_job = maybe_retrain(runtime.ports)
    tasks = list(runtime.ports.tasks.list())
    decided = [t for t in tasks if t.status == "decided"]
    crowd_report = {
        "workers": "12 simulated, accuracy uniform in 0.6-0.9, 2 of them spammers",
        "published": published.published,
        "collect_rounds": len(rounds),
        "votes": sum(len(t.votes) for t in tasks),
        "decided": len(decided),
        "changed": sum(t.outcome != t.current_label for t in decided),
        "decided_right": sum(t.outcome == truth[t.image_id][t.facet] for t in decided),
        "escalated_to_staff": sum(t.status == "escalated" for t in tasks),
        "conflicts": sum(t.status == "conflict" for t in tasks),
    }
    after = error_rates(usable(runtime), truth)
    print(json.dumps(crowd_report), flush=True)
    lap("review_and_crowd")

    if train_job is None:
        raise SystemExit(f"no training submitted: fewer than {RETRAIN_THRESHOLD} labels changed")
    runtime.jobs.wait(train_job)
    status = runtime.jobs.status(train_job)
    if status != "SUCCEEDED":
        log = runtime.jobs.log_path(train_job)
        raise SystemExit(f"retraining job {train_job} {status}; see {log}")
    second = ModelRegistry(runtime.ports.artifacts).current(FACETS)
    lap("retrain_job")

    f1_before = true_test_f1(runtime, first.version, truth)
    f1_after = true_test_f1(runtime, second, truth)
    lap("evaluate_on_true_labels")
    report = {
        "command": f"python bench/loop.py --products {args.products} --noise {args.noise}",
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()},
        "catalog": {
            "products": args.products,
            "seed": args.seed,
            "noise_per_facet": args.noise,
            "images": images,
        },
        "out_of_sample": f"{args.oof_folds}-fold cross-validated predictions for train images "
        "(folds by product); the model's own predictions for test images",
        "ranking": ranking,
        "crowd": crowd_report,
        "label_error_rate": {"before": before, "after": after},
        "models": {"before": first.version, "after": second, "retrain_job": train_job},
        "test_macro_f1_on_true_labels": {
            "before": f1_before,
            "after": f1_after,
            "mean_before": mean(f1_before),
            "mean_after": mean(f1_after),
        },
        "test_macro_f1_own_evaluation": {
            "before": own_test_f1(runtime, first.version),
            "after": own_test_f1(runtime, second),
        },
        "seconds": seconds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
