"""What to judge the train split's labels with (issue 13, item 1): fold models or the training
dynamics, which epochs, which filter. The same catalog, the same flips, scored against the truth.

Two runs on the loop's catalog (bench/loop.py: 500 products, seed 0, 8% of labels flipped):

- `--folds WORK`: a `bench/loop.py --oof-folds 2 --work WORK` run: its first model's stored
  out-of-fold predictions (two fold models, each trained on half the train split's products);
- `--dynamics WORK`: a capture made by this script (`--capture WORK --catalog CATALOG`: the
  default `dressvision train` on the catalog, with every epoch's probabilities of every train
  image saved beside the model, `per_epoch.npz` and `rows.json`).

Each option's probabilities judge the train split (the test split is judged by the model's own
predictions, the same in every option). Reported, over all 4 facets and both splits: precision
at K = the number of wrong labels, when every label is ranked by self-confidence over the class
threshold (review's order); the flagged set of each filter (`confident_learning`, and
`predicted_neq_given`, what review uses), its size, precision and recall, and the precision of
its first 50, 100, 200, 300 and 400 (what a task budget per round buys); and per facet
precision at K. Dynamics windows: the product's (from the warm-up to the middle of the run),
the whole run, and a few others for the record (chosen on this one catalog, not used).

    .venv/bin/python bench/judge_options.py --capture /tmp/dyn --catalog /tmp/loop/catalog
    .venv/bin/python bench/judge_options.py --folds /tmp/loop --dynamics /tmp/dyn \\
        --catalog /tmp/loop/catalog --out bench/results/judge_options.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.oof_options import emit, read_csv  # noqa: E402
from local.runtime import LocalRuntime  # noqa: E402
from shared.relabel import OOF_SUFFIX, oof_version  # noqa: E402
from shared.suspicious import FILTERS, per_class_thresholds, rank_suspicious  # noqa: E402

Probs = dict[str, dict[str, np.ndarray]]  # facet -> image id -> probabilities
BUDGETS = (50, 100, 200, 300, 400)  # tasks per round


def capture(work: Path, catalog: Path) -> None:
    """Train the default recipe on `catalog`, keeping every epoch's training probabilities."""
    import batch_jobs.train as train_module
    from batch_jobs.dynamics import TrainingDynamics
    from local.commands.importer import import_catalog

    epochs: list[dict[str, np.ndarray]] = []
    rows: list[str] = []

    class Capturing(TrainingDynamics):
        def end_epoch(self, epoch: int) -> None:
            seen = self._seen.numpy()[:, None]
            epochs.append({f: np.where(seen, p.numpy(), np.nan) for f, p in self._epoch.items()})
            super().end_epoch(epoch)

    store = train_module.store_predictions

    def keep_rows(predictions, version, prepared, probs, taxonomy):
        if version.endswith(OOF_SUFFIX):
            rows[:] = [r.image_id for r in prepared.records]
        return store(predictions, version, prepared, probs, taxonomy)

    train_module.TrainingDynamics = Capturing
    train_module.store_predictions = keep_rows
    runtime = LocalRuntime.open(work / "home", environ={})
    import_catalog(runtime, catalog, progress=False)
    result = train_module.train(train_module.default_args(), runtime.ports)
    np.savez_compressed(
        work / "per_epoch.npz", **{f"{f}_{e}": d[f] for e, d in enumerate(epochs) for f in d}
    )
    (work / "rows.json").write_text(json.dumps({"version": result.version, "rows": rows}))
    print(f"captured {len(epochs)} epochs of {len(rows)} train images, model {result.version}")


def captured(work: Path) -> tuple[str, int]:
    """The model version and the number of epochs of a `--capture` folder."""
    data = np.load(work / "per_epoch.npz")
    version = json.loads((work / "rows.json").read_text())["version"]
    return version, len({key.rsplit("_", 1)[1] for key in data.files})


def window_probs(work: Path, start: int, end: int) -> tuple[str, Probs]:
    meta = json.loads((work / "rows.json").read_text())
    data = np.load(work / "per_epoch.npz")
    facets = sorted({key.rsplit("_", 1)[0] for key in data.files})
    out: Probs = {}
    for facet in facets:
        stack = np.stack([data[f"{facet}_{e}"] for e in range(start, end)])
        seen = ~np.isnan(stack)
        counts = seen.sum(axis=0)
        mean = np.where(seen, stack, 0.0).sum(axis=0) / np.maximum(counts, 1)
        mean = np.where(counts > 0, mean, 1.0 / mean.shape[1])  # never seen: uniform
        mean /= mean.sum(axis=1, keepdims=True)
        out[facet] = dict(zip(meta["rows"], mean, strict=True))
    return meta["version"], out


def stored_probs(runtime: LocalRuntime, version: str) -> Probs:
    out: Probs = {}
    for p in runtime.ports.predictions.for_model(version):
        for facet, prediction in p.facets.items():
            out.setdefault(facet, {})[p.image_id] = np.array(prediction.probs)
    return out


def judge(
    train_probs: Probs, test_probs: Probs, given: Callable, wrong: Callable, taxonomy
) -> dict:
    """Score one option: ranking precision at K, each filter's flagged set, per facet."""
    ranked: list[tuple[float, bool]] = []
    flagged = {name: [] for name in FILTERS}  # (score, wrong) of each filter's flags
    per_facet, k_total = {}, 0
    for facet in taxonomy.facet_names:
        ids = [i for i in sorted(train_probs[facet]) if given(i, facet)]
        ids += [i for i in sorted(test_probs[facet]) if given(i, facet)]
        probs = np.array(
            [train_probs[facet].get(i, test_probs[facet].get(i)) for i in ids], dtype=np.float64
        )
        labels = np.array([taxonomy.index(facet, given(i, facet)) for i in ids])
        is_wrong = np.array([wrong(i, facet) for i in ids])
        thresholds = per_class_thresholds(labels, probs)
        score = probs[np.arange(len(ids)), labels] / thresholds[labels]
        k = int(is_wrong.sum())
        k_total += k
        per_facet[facet] = {
            "k": k,
            "precision_at_k": round(float(is_wrong[np.argsort(score)[:k]].mean()), 4),
        }
        ranked += list(zip(score, is_wrong, strict=True))
        for name in FILTERS:
            found = rank_suspicious(labels, probs, thresholds=thresholds, flag_by=name)
            flagged[name] += [(s.score, bool(is_wrong[s.index])) for s in found]
    ranked.sort(key=lambda pair: pair[0])
    hits = [w for _, w in ranked[:k_total]]
    for found in flagged.values():
        found.sort(key=lambda pair: pair[0])  # review's order across facets
    return {
        "k": k_total,
        "precision_at_k": round(sum(hits) / k_total, 4),
        "flagged": {
            name: {
                "count": len(found),
                "precision": round(sum(w for _, w in found) / len(found), 4) if found else None,
                "recall": round(sum(w for _, w in found) / k_total, 4),
                # what a budget of N tasks buys: the share of flips among review's first N
                "precision_of_the_first": {
                    str(n): round(sum(w for _, w in found[:n]) / n, 4)
                    for n in BUDGETS
                    if len(found) >= n
                },
            }
            for name, found in flagged.items()
        },
        "per_facet": per_facet,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, required=True, help="labels.csv + labels_true.csv")
    parser.add_argument("--capture", type=Path, help="train and capture into this folder")
    parser.add_argument("--folds", type=Path, help="a bench/loop.py --oof-folds 2 --work folder")
    parser.add_argument("--dynamics", type=Path, help="a --capture folder")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.capture:
        capture(args.capture, args.catalog)
        return 0
    if not (args.folds and args.dynamics):
        parser.error("give --capture, or both --folds and --dynamics")
    from shared.registry import ModelRegistry

    given_csv = read_csv(args.catalog / "labels.csv")
    truth = read_csv(args.catalog / "labels_true.csv")

    def given(image_id: str, facet: str) -> str | None:
        return given_csv.get(image_id, {}).get(facet) or None

    def wrong(image_id: str, facet: str) -> bool:
        return given_csv[image_id][facet] != truth[image_id][facet]

    report: dict = {"catalog": str(args.catalog), "options": {}}
    runtime = LocalRuntime.open(args.dynamics / "home", environ={})
    taxonomy = runtime.ports.taxonomy
    version, epochs = captured(args.dynamics)
    test_ids = {r.image_id for r in runtime.ports.labels.scan() if r.split == "test"}
    own = stored_probs(runtime, version)
    test_probs = {f: {i: p for i, p in v.items() if i in test_ids} for f, v in own.items()}
    from batch_jobs.train import default_args, dynamics_window

    product = dynamics_window(default_args(epochs=epochs))
    windows = {"product": product, "whole_run": (product[0], epochs)}
    windows.update(
        {f"epochs_{s}_{e}": (s, e) for s, e in ((5, 15), (5, 20), (10, 20), (20, epochs))}
    )
    for name, (start, end) in windows.items():
        _, probs = window_probs(args.dynamics, start, end)
        result = judge(probs, test_probs, given, wrong, taxonomy)
        report["options"][f"dynamics/{name}"] = {"epochs": [start, end], **result}
    folds_runtime = LocalRuntime.open(args.folds / "home", environ={})
    first = sorted(ModelRegistry(folds_runtime.ports.artifacts).versions("facets"))[0]
    folds = stored_probs(folds_runtime, oof_version(first))
    report["options"]["fold_models"] = {
        "model": first,
        **judge(folds, test_probs, given, wrong, taxonomy),
    }
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
