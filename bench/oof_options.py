"""Which out-of-sample probabilities judge labels best (issue 13, item 1), on the first model
of a `bench/loop.py` run: the same catalog, the same flips, no extra training.

Options, each ranked the way `review` ranks (confident learning per facet, one order across
facets), scored by precision at K = the number of flipped labels (the catalog's labels.csv
against labels_true.csv), over the images each option covers:

- `oof`: what the recipe stores: the fold models' out-of-fold probabilities for the train split
  (`--oof-folds`), the model's own for the test split;
- `oof_temperature`: the same after one temperature per facet fitted on them (log-loss
  against the given labels; cleanlab's advice for over- or under-confident models);
- `features_lr`: cross-validated logistic regression (scikit-learn, 5 folds grouped by
  product) on the FULL model's pooled features of every image: no fold models at all, so half
  the training time, but the features come from a model that trained on the (noisy) train
  labels;
- and each with the former margin order next to the self-confidence order.

    python bench/oof_options.py --work /tmp/dressvision-loop-XXXX [--model VERSION]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from local.runtime import LocalRuntime  # noqa: E402
from shared.relabel import oof_version  # noqa: E402
from shared.suspicious import rank_suspicious  # noqa: E402


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as handle:
        return {row["image_id"]: row for row in csv.DictReader(handle)}


def ranked(per_facet: dict[str, tuple[list[str], np.ndarray, np.ndarray]], order_by: str):
    """[(image id, facet)] in review's order across facets."""
    found = []
    for facet, (ids, given, probs) in per_facet.items():
        for s in rank_suspicious(given, probs, ids=ids, order_by=order_by):
            key = s.score if order_by == "self_confidence" else -s.margin
            found.append((key, s.item_id, facet))
    found.sort()
    return [(image_id, facet) for _, image_id, facet in found]


def score(cells, flipped: set, covered: set) -> dict:
    wrong = {c for c in flipped if c[0] in covered}
    top = cells[: len(wrong)]
    hits = sum(c in wrong for c in top)
    return {
        "images": len(covered),
        "k": len(wrong),
        "flagged": len(cells),
        "precision_at_k": round(hits / len(top), 4) if top else None,
        "recall_flagged": round(sum(c in wrong for c in cells) / len(wrong), 4) if wrong else None,
    }


def emit(report: dict, out: Path | None) -> None:
    """Print the report, and write it to `out` when given."""
    print(json.dumps(report, indent=2))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")


def temperature(given: np.ndarray, probs: np.ndarray) -> float:
    """The temperature T that minimises the log-loss of softmax(log p / T) on the given labels."""
    logits = np.log(np.clip(probs, 1e-12, 1))
    best = (np.inf, 1.0)
    for t in np.exp(np.linspace(np.log(0.25), np.log(4), 41)):
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = -logp[np.arange(len(given)), given].mean()
        best = min(best, (loss, float(t)))
    return best[1]


def scaled(probs: np.ndarray, t: float) -> np.ndarray:
    z = np.log(np.clip(probs, 1e-12, 1)) / t
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def pooled_features(runtime, version, records) -> np.ndarray:
    import torch
    from PIL import Image

    from batch_jobs.facets.predictor import FacetTagger
    from batch_jobs.facets.preprocess import to_model_input
    from shared.registry import ModelRegistry

    tagger = FacetTagger.from_registry(ModelRegistry(runtime.ports.artifacts), version)
    out = []
    for start in range(0, len(records), 64):
        chunk = records[start : start + 64]
        images = [
            Image.open(io.BytesIO(runtime.ports.catalog.get(r.object_key).body)).convert("RGB")
            for r in chunk
        ]
        prepared, _, _ = tagger.prepare(images)
        with torch.inference_mode():
            inputs = to_model_input(prepared.to(tagger.device), tagger.config)
            out.append(tagger.model.forward_features(inputs).float().cpu().numpy())
    return np.concatenate(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a bench/loop.py --work folder")
    parser.add_argument("--model", default=None, help="facet model version (default: the first)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_predict

    from shared.registry import ModelRegistry

    runtime = LocalRuntime.open(args.work / "home", environ={})
    taxonomy = runtime.ports.taxonomy
    version = args.model or sorted(ModelRegistry(runtime.ports.artifacts).versions("facets"))[0]
    given_csv = read_csv(args.work / "catalog" / "labels.csv")
    truth = read_csv(args.work / "catalog" / "labels_true.csv")
    records = sorted(
        (r for r in runtime.ports.labels.scan() if r.image_id in given_csv and r.status == "ok"),
        key=lambda r: r.image_id,
    )
    facets = list(taxonomy.facet_names)
    flipped = {
        (r.image_id, f)
        for r in records
        for f in facets
        if given_csv[r.image_id].get(f) and given_csv[r.image_id][f] != truth[r.image_id][f]
    }
    own = {p.image_id: p for p in runtime.ports.predictions.for_model(version)}
    oof = {p.image_id: p for p in runtime.ports.predictions.for_model(oof_version(version))}
    oos = {r.image_id: (own if r.split == "test" else oof).get(r.image_id) for r in records}
    covered = {i for i, p in oos.items() if p is not None}

    def table(probs_of) -> dict[str, tuple[list[str], np.ndarray, np.ndarray]]:
        out = {}
        for f in facets:
            rows = [
                r for r in records if given_csv[r.image_id].get(f) and probs_of(r, f) is not None
            ]
            if rows:
                ids = [r.image_id for r in rows]
                given = np.array([taxonomy.index(f, given_csv[i][f]) for i in ids])
                out[f] = (ids, given, np.array([probs_of(r, f) for r in rows]))
        return out

    options = {
        "oof": table(lambda r, f: oos[r.image_id].facets[f].probs if oos[r.image_id] else None)
    }
    options["oof_temperature"] = {
        f: (ids, given, scaled(probs, temperature(given, probs)))
        for f, (ids, given, probs) in options["oof"].items()
    }
    features = pooled_features(runtime, version, records)
    groups = [r.product_id for r in records]
    lr = {}
    for f in facets:
        rows = [k for k, r in enumerate(records) if given_csv[r.image_id].get(f)]
        y = np.array([taxonomy.index(f, given_csv[records[k].image_id][f]) for k in rows])
        model = LogisticRegression(C=0.1, max_iter=2000)
        probs = cross_val_predict(
            model,
            features[rows],
            y,
            groups=[groups[k] for k in rows],
            cv=GroupKFold(n_splits=5),
            method="predict_proba",
        )
        full = np.full((len(rows), len(taxonomy.labels(f))), 1e-6)
        full[:, np.unique(y)] = probs
        lr[f] = ([records[k].image_id for k in rows], y, full / full.sum(axis=1, keepdims=True))
    options["features_lr"] = lr
    everything = {r.image_id for r in records}
    report = {"model": version, "images": len(records), "flipped": len(flipped), "options": {}}
    for name, per_facet in options.items():
        cover = covered if name.startswith("oof") else everything
        for order in ("self_confidence", "margin"):
            report["options"][f"{name}/{order}"] = score(ranked(per_facet, order), flipped, cover)
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
