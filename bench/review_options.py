"""What the review flags, photo by photo or product by product, and with how much doubt
(issue 13), on the first model of a `bench/loop.py` run: the same catalog, the same flips, no
training and no crowd.

Each option ranks the catalog's labels (labels.csv) with the first model's judging
probabilities, as `review` does (shared/relabel.py: predicted_neq_given per facet, the class
thresholds over every photo), and is scored against labels_true.csv:

- `per_photo`: every photo its own suspect and task (the review before products);
- `product`: the photos of a product with the same label judged as one (their probabilities
  averaged; one task, whose answer sets them all);
- `product_doubt_D`: the same, also flagging a product whose probability of its label is under
  D times its class's mean (DRESSVISION_REVIEW_DOUBT).

Reported per option: tasks, the labels they cover, how many of those are wrong (flips), the
precision (of the labels covered) and the recall of the flips. The answers each costs need the
crowd: bench/crowd_replay.py.

    python bench/review_options.py --work W [--model VERSION] [--doubt 0.5 0.7 0.85 1.0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.oof_options import emit, read_csv  # noqa: E402
from local.runtime import LocalRuntime  # noqa: E402
from shared.relabel import REVIEW_FILTER, oof_version, product_groups  # noqa: E402
from shared.suspicious import per_class_thresholds, rank_suspicious  # noqa: E402


def facet_rows(catalog, truth, splits, probs, facet, labels):
    """The photos with a catalog label and judging probabilities of `facet`: their records
    (image and product id), given and true label indices, and probabilities."""
    rows, given, true, matrix = [], [], [], []
    for image_id, row in sorted(catalog.items()):
        p = probs.get(image_id, {}).get(facet)
        if p is None or image_id not in splits or row[facet] not in labels:
            continue
        rows.append(SimpleNamespace(image_id=image_id, product_id=row["product_id"]))
        given.append(labels.index(row[facet]))
        true.append(labels.index(truth[image_id][facet]))
        matrix.append(p)
    return rows, np.array(given), np.array(true), np.array(matrix, dtype=np.float64)


def score(per_facet, *, by_product: bool, doubt: float) -> dict:
    tasks = covered = wrong_covered = wrong_total = 0
    for rows, given, true, matrix in per_facet:
        wrong = given != true
        wrong_total += int(wrong.sum())
        thresholds = per_class_thresholds(given, matrix)
        groups = product_groups(rows, given) if by_product else [[i] for i in range(len(rows))]
        firsts = [g[0] for g in groups]
        for s in rank_suspicious(
            given[firsts],
            np.stack([matrix[g].mean(axis=0) for g in groups]),
            thresholds=thresholds,
            flag_by=REVIEW_FILTER,
            doubt=doubt,
        ):
            group = groups[s.index]
            tasks += 1
            covered += len(group)
            wrong_covered += int(wrong[group].sum())
    return {
        "tasks": tasks,
        "labels": covered,
        "wrong_labels_covered": wrong_covered,
        "precision": round(wrong_covered / covered, 4) if covered else None,
        "recall": round(wrong_covered / wrong_total, 4) if wrong_total else None,
        "wrong_labels": wrong_total,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a bench/loop.py --work folder")
    parser.add_argument("--model", default=None, help="facet model version (default: the first)")
    parser.add_argument("--doubt", type=float, nargs="+", default=[0.5, 0.7, 0.8, 0.85, 0.9, 1.0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from shared.registry import ModelRegistry

    ports = LocalRuntime.open(args.work / "home", environ={}).ports
    version = args.model or sorted(ModelRegistry(ports.artifacts).versions("facets"))[0]
    catalog = read_csv(args.work / "catalog" / "labels.csv")
    truth = read_csv(args.work / "catalog" / "labels_true.csv")
    splits = {r.image_id: r.split for r in ports.labels.scan() if r.status == "ok"}
    source = {
        "test": {p.image_id: p for p in ports.predictions.for_model(version)},
        "train": {p.image_id: p for p in ports.predictions.for_model(oof_version(version))},
    }
    probs = {}
    for image_id, split in splits.items():
        prediction = source[split].get(image_id)
        if prediction is not None:
            probs[image_id] = {f: p.probs for f, p in prediction.facets.items()}
    taxonomy = ports.taxonomy
    per_facet = [
        facet_rows(catalog, truth, splits, probs, facet, taxonomy.labels(facet))
        for facet in taxonomy.facet_names
    ]
    options = {
        "per_photo": score(per_facet, by_product=False, doubt=0.0),
        "product": score(per_facet, by_product=True, doubt=0.0),
    }
    for doubt in args.doubt:
        options[f"product_doubt_{doubt:g}"] = score(per_facet, by_product=True, doubt=doubt)
    report = {
        "command": " ".join(["python", "bench/review_options.py", *sys.argv[1:]]),
        "model": version,
        "options": options,
    }
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
